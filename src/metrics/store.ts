import type { Store } from '../store/types.ts';
import type { Metrics } from './registry.ts';

/**
 * The Store with every repository call timed into
 * pgferry_store_operation_duration_seconds{repository, operation, backend}.
 * A Proxy, so repositories other helpers add are timed too without a line
 * here: any object-valued property of the store whose members are functions
 * is a repository.
 */
export function instrumentStore<S extends Store>(store: S, metrics: Metrics): S {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof property !== 'string' || property === 'database' || value === null || typeof value !== 'object') return value;
      if (!wrapped.has(property)) wrapped.set(property, timedRepository(value as object, property, target.backend, metrics));
      return wrapped.get(property);
    },
  });
}

function timedRepository(repository: object, name: string, backend: string, metrics: Metrics): object {
  return new Proxy(repository, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof property !== 'string' || typeof value !== 'function') return value;
      return function timed(this: unknown, ...args: unknown[]) {
        const end = metrics.storeDuration.startTimer({ repository: name, operation: property, backend });
        let result: unknown;
        try {
          result = (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (error) {
          end({ outcome: 'error' });
          throw error;
        }
        if (result instanceof Promise) {
          return result.then(
            (resolved) => {
              end({ outcome: 'ok' });
              return resolved;
            },
            (error: unknown) => {
              end({ outcome: 'error' });
              throw error;
            },
          );
        }
        end({ outcome: 'ok' });
        return result;
      };
    },
  });
}
