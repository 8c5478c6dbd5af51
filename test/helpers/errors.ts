import { CxrError } from '../../lib/errors';

/** Runs `fn`, expects a CxrError with `code`, and returns it for further checks. */
export function expectCode(fn: () => unknown, code: string): CxrError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CxrError);
    expect((e as CxrError).code).toBe(code);
    return e as CxrError;
  }
  throw new Error(`expected CxrError ${code}`);
}

/** Awaits `p`, expects it to reject with a CxrError with `code`, and returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<CxrError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CxrError);
    expect((e as CxrError).code).toBe(code);
    return e as CxrError;
  }
  throw new Error(`expected CxrError ${code}`);
}
