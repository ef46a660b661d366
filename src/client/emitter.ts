// A minimal typed event emitter: the client runs in browsers too, so no node:events.
// Unlike Node's EventEmitter, an 'error' without listeners is not thrown, and a listener that
// throws does not interrupt the emitter: its error is re-thrown as uncaught, asynchronously.

/** Listeners are stored untyped; on() and emit() keep the types honest. */
type Listener = (...args: unknown[]) => void;

export class Emitter<Events extends Record<string, unknown[]>> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  on<E extends keyof Events>(event: E, fn: (...args: Events[E]) => void): this {
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(fn as unknown as Listener);
    return this;
  }

  once<E extends keyof Events>(event: E, fn: (...args: Events[E]) => void): this {
    const wrapper = (...args: Events[E]): void => {
      this.off(event, wrapper);
      fn(...args);
    };
    return this.on(event, wrapper);
  }

  off<E extends keyof Events>(event: E, fn: (...args: Events[E]) => void): this {
    this.listeners.get(event)?.delete(fn as unknown as Listener);
    return this;
  }

  /** Resolves with the event's arguments the next time it is emitted. */
  next<E extends keyof Events>(event: E): Promise<Events[E]> {
    return new Promise((resolve) => this.once(event, (...args) => resolve(args)));
  }

  protected emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const fn of [...set]) {
      try {
        fn(...(args as unknown[]));
      } catch (err) {
        // A throwing listener must not corrupt the client's state (a watch stream shared by
        // other watchers, a keep-alive loop): report it as uncaught, out of our call stack.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
