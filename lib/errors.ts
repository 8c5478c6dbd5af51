/**
 * Stable error codes. Every failure that reaches a user carries one of these, so that programs can
 * branch on `err.code` instead of parsing messages.
 */
export type ErrorCode =
  | 'E_SHAPE' // tensor/array shape or size does not match what the call expects
  | 'E_DTYPE' // wrong element type
  | 'E_DEVICE' // device not available (e.g. CUDA on a CPU build)
  | 'E_OOM' // out of memory
  | 'E_DISPOSED' // a native handle was used after dispose()
  | 'E_BUSY' // an async call is already running on this handle
  | 'E_CONFIG' // invalid option or configuration
  | 'E_TORCH' // any other libtorch error
  | 'E_NUMERIC' // NaN or Inf where finite numbers are required
  | 'E_DIST' // a distributed collective failed (a peer died or timed out) or the rendezvous failed
  | 'E_IO' // file system error
  | 'E_CHECKPOINT' // unreadable or mismatching checkpoint
  | 'E_TOKENIZER' // tokenizer files or input are invalid
  | 'E_PARSE' // malformed text input (report, CSV, JSON, YAML)
  | 'E_DATA' // dataset rows or files are invalid
  | 'E_UNSUPPORTED' // a valid input this build cannot handle
  | 'E_UNSUPPORTED_DICOM' // a DICOM encoding the image pipeline cannot decode
  | 'E_NATIVE_LOAD' // the addon could not be loaded
  | 'E_INTERNAL'; // a bug: please report

/** The one error type thrown by cxr-train. `code` is stable across versions; `message` is for people. */
export class CxrError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CxrError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/** True when `e` is a CxrError, optionally with the given code. */
export function isCxrError(e: unknown, code?: ErrorCode): e is CxrError {
  return e instanceof CxrError && (code === undefined || e.code === code);
}
