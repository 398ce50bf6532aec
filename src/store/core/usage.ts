import type { TierLimits } from '../../config.ts';
import { validateUserId } from '../../domain/ids.ts';
import { type ConsumeResult, rollPeriods, toStatus, type UsageStatus, validateAmount, validateTier } from '../../domain/usage.ts';
import type { UsageRepository } from '../types.ts';
import type { ConsumeState, UsageBackend, UsageState } from './backend.ts';

/**
 * The usage repository, once for every backend: validation here, the
 * atomic check-and-count in the backend, the status (windows rolled to the
 * current periods, the tier's limits, reset instants) built here.
 */

export const usageStatus = (userId: string, state: UsageState, limits: TierLimits): UsageStatus =>
  toStatus(userId, rollPeriods(state.counters, state.periods), limits, state.periods);

export const consumeResult = (userId: string, state: ConsumeState, limits: TierLimits): ConsumeResult => ({
  ...usageStatus(userId, state, limits),
  allowed: state.allowed,
});

export function createUsageRepository(backend: UsageBackend, tierLimits: TierLimits): UsageRepository {
  return {
    async get(userId) {
      validateUserId(userId);
      return usageStatus(userId, await backend.read(userId), tierLimits);
    },
    async consume(userId, n = 1) {
      validateUserId(userId);
      validateAmount(n);
      return consumeResult(userId, await backend.consume(userId, n), tierLimits);
    },
    async setTier(userId, tier) {
      validateUserId(userId);
      validateTier(tier);
      return usageStatus(userId, await backend.setTier(userId, tier), tierLimits);
    },
  };
}
