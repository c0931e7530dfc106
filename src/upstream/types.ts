import type { Readable } from 'node:stream';

// The contract every backend fulfils (docs/architecture.md, Contracts).
//
// Paths given to an Upstream are *canonical DAV paths*: already percent-decoded,
// starting with "/", segments joined by single "/", no trailing slash (the root is "/"),
// no "." or ".." segment, no NUL (see src/davpath.ts, which produces them). A backend
// must still confine them to its own root and refuse anything that would leave it:
// the canonical form is a promise of the caller, confinement is the backend's duty.
//
// Errors: backends throw only classes from src/errors.ts (NotFoundError for a
// missing path, ConflictError for a missing parent, ...), never raw system or SDK errors.

export type EntryKind = 'file' | 'dir';

export interface Entry {
  /** Last path segment ("" for the root). */
  readonly name: string;
  /** Canonical DAV path of this entry. */
  readonly path: string;
  readonly kind: EntryKind;
  /** Bytes; 0 for directories. */
  readonly size: number;
  readonly mtimeMs: number;
  /** Creation time where the backend knows it, else mtimeMs. */
  readonly birthtimeMs: number;
  /**
   * Opaque string that changes whenever the content changes (fs: inode+size+mtime,
   * S3: the ETag). The cache compares it to decide whether blocks are still valid.
   */
  readonly validator: string;
}

/**
 * Who an operation is for. Backends that act with the caller's own credentials (WebDAV with
 * pass-through auth) use `authorization`; the others ignore it. Trailing and optional in
 * every method, so a backend that does not care simply omits the parameter.
 */
export interface CallContext {
  /** The client's Authorization header, forwarded as is. */
  readonly authorization?: string;
}

export interface Quota {
  readonly availableBytes: number;
  readonly usedBytes: number;
}

/**
 * Arguments of Upstream.read. Every method takes its paths (and body) positionally, then one
 * options object for the rest, then the CallContext: a flag is always named at the call site.
 */
export interface ReadOptions {
  /** First byte wanted. */
  readonly offset: number;
  /** Bytes wanted: fewer come back only at the end of the object. */
  readonly length: number;
  /** The version the caller holds (Entry.validator): another one gives PreconditionFailedError. */
  readonly expectValidator?: string;
  /** Where the bytes go as they arrive (see ReadSink). */
  readonly sink?: ReadSink;
}

export interface WriteOptions {
  /** The body's declared length: a body that ends short of it or runs past it is refused. */
  readonly size?: number;
}

export interface MoveOptions {
  /** Replace an existing destination; false gives ExistsError when it exists. */
  readonly overwrite: boolean;
}

export interface CopyOptions extends MoveOptions {
  /** A collection alone, without its members (Depth: 0). Default false: the whole tree. */
  readonly shallow?: boolean;
}

/**
 * What a backend can do is what it implements: `quota` and `setMtime` exist only on backends
 * (or configurations) that can answer them, so callers test for the method, never for a flag.
 */
export interface Upstream {
  /** Stable identifier of this store (part of every cache key), e.g. "fs:/srv/data". */
  readonly id: string;

  /**
   * Bytes one read should ask for when more are wanted in sequence: a store whose requests
   * cost more than their bytes (an object store: signing, per-request lookups, its own
   * striping) serves one big range faster than several small ones. Absent: block by block.
   */
  readonly preferredReadBytes?: number;

  /** Metadata of one path. NotFoundError when absent. */
  stat(path: string, ctx?: CallContext): Promise<Entry>;

  /**
   * Children of a directory, streamed: a backend never reads a whole huge directory into
   * one array before yielding the first entry. Order is unspecified. Temporary files of
   * in-progress writes are never listed. NotFoundError / NotADirectoryError.
   */
  list(path: string, ctx?: CallContext): AsyncIterable<Entry>;

  /**
   * Up to `length` bytes at `offset` (fewer only at end of file). When `expectValidator`
   * is given and the object no longer has it, throws PreconditionFailedError instead of
   * returning bytes of another version. With a `sink`, the bytes are written into
   * `sink.buffer` as they arrive (only after the version was checked) and announced with
   * `progress`, so a reader can stream them before the read ends; the result is then that buffer
   * (or a prefix of it).
   */
  read(path: string, opts: ReadOptions, ctx?: CallContext): Promise<Buffer>;

  /**
   * Store `body` at `path`, atomically: readers see the old object or the complete new
   * one, never a part. When `size` is given and the body is shorter or longer, or the body
   * errors (client abort), nothing is committed and IncompleteBodyError (or the body's
   * error) is thrown. ConflictError when the parent directory is missing.
   */
  write(path: string, body: Readable, opts?: WriteOptions, ctx?: CallContext): Promise<Entry>;

  /** Create one directory. ExistsError if present, ConflictError if the parent is missing. */
  mkdir(path: string, ctx?: CallContext): Promise<void>;

  /** Delete a file or a whole directory tree. NotFoundError when absent. */
  remove(path: string, ctx?: CallContext): Promise<void>;

  /**
   * Rename. Without `overwrite` an existing destination gives ExistsError; with it, it
   * is replaced (a directory destination is removed first). ConflictError when the
   * destination's parent is missing.
   */
  move(from: string, to: string, opts: MoveOptions, ctx?: CallContext): Promise<void>;

  /** Copy a file or a tree (depth infinity), or only the collection itself (`shallow`). Overwrite as move. */
  copy(from: string, to: string, opts: CopyOptions, ctx?: CallContext): Promise<void>;

  /** Free/used space. Absent where the backend has no figure to give. */
  quota?(path: string, ctx?: CallContext): Promise<Quota>;

  /** Set the modification time. Absent where the backend cannot. */
  setMtime?(path: string, mtimeMs: number, ctx?: CallContext): Promise<void>;

  /**
   * The MD5 (hex) of a file's content when its validator (Entry.validator) tells it without a
   * read, else undefined. Absent where the backend never can.
   */
  contentMd5?(validator: string): string | undefined;

  close?(): Promise<void>;
}

/** Where a streaming read puts its bytes (see Upstream.read). */
export interface ReadSink {
  /** At least `length` bytes long. */
  readonly buffer: Buffer;
  /** Bytes [0, filled) of `buffer` are final. Called with growing values; a retried read may repeat them. */
  progress(filled: number): void;
  /** An attempt was given up (timed out) while its writes into `buffer` may still land: never reuse it. */
  abandon?(): void;
}
