/**
 * Calls `emit(count)` at most once per `everyMs` for each key, with how many events it stood for:
 * what a flood of refused connections costs in log lines stays bounded.
 */
export const rateLimited = (everyMs: number) => {
  const last = new Map<string, { at: number; count: number }>()
  return (key: string, emit: (count: number) => void): void => {
    const now = performance.now()
    const entry = last.get(key)
    if (entry === undefined || now - entry.at >= everyMs) {
      emit((entry?.count ?? 0) + 1)
      // Keys are reasons (a handful); should they ever vary, the map stays small.
      if (last.size >= 64) last.clear()
      last.set(key, { at: now, count: 0 })
    } else {
      entry.count++
    }
  }
}
