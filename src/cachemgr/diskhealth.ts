// The cache disk is optional (a lesson of JuiceFS): when writing blocks fails `threshold` times
// in a row (disk full, EIO, read-only), installs stop for `pauseMs` and blocks are served
// straight from the upstream; then the next install tries the disk again. A block that could
// not be kept is still served: the bytes come from the fetch, not from the disk.

export class DiskHealth {
  readonly #threshold: number;
  readonly #pauseMs: number;
  readonly #onChange: (bypassed: boolean, err?: unknown) => void;
  #failures = 0;
  #until = 0;
  #reported = false;

  constructor(threshold: number, pauseMs: number, onChange: (bypassed: boolean, err?: unknown) => void) {
    this.#threshold = threshold;
    this.#pauseMs = pauseMs;
    this.#onChange = onChange;
  }

  /** True while installs are skipped; after the pause one install is let through to probe the disk. */
  get bypassed(): boolean {
    return this.#until > Date.now();
  }

  succeeded(): void {
    this.#failures = 0;
    if (this.#reported) {
      this.#reported = false;
      this.#onChange(false);
    }
  }

  /** A failed install; while bypassed, a failing probe pauses the disk again at once. */
  failed(err: unknown): void {
    if (!this.#reported && ++this.#failures < this.#threshold) return;
    this.#until = Date.now() + this.#pauseMs;
    this.#failures = 0;
    if (this.#reported) return;
    this.#reported = true;
    this.#onChange(true, err);
  }
}
