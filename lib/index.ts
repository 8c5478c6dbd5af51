/** cxr-train public API. Only what is exported here is public. */
export { CxrError, isCxrError } from './errors';
export type { ErrorCode } from './errors';
