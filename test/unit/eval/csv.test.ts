import { formatCsv, parseCsv, parseCsvTable } from '../../../lib/util/csv';
import { isCxrError } from '../../../lib/errors';

describe('CSV', () => {
  test('BOM, CRLF, quoted fields with separators, quotes and newlines', () => {
    const text = '\ufeffid,text,x\r\n1,"a, ""b""\r\nc",2\r\n2,,3\r\n';
    expect(parseCsv(text)).toEqual([
      ['id', 'text', 'x'],
      ['1', 'a, "b"\r\nc', '2'],
      ['2', '', '3'],
    ]);
  });

  test('no final newline, CR-only line ends, empty lines skipped, empty trailing field kept', () => {
    expect(parseCsv('a,b\rc,\n\n\nd,e')).toEqual([['a', 'b'], ['c', ''], ['d', 'e']]);
    expect(parseCsv('a;b\n1;2', { separator: ';' })).toEqual([['a', 'b'], ['1', '2']]);
    expect(parseCsv('""\n')).toEqual([['']]);
  });

  test('errors carry codes and line numbers', () => {
    const err = (f: () => unknown): unknown => {
      try {
        f();
      } catch (e) {
        return e;
      }
      return null;
    };
    const e1 = err(() => parseCsv('a\n"b\nc', { source: 'f.csv' }));
    expect(isCxrError(e1, 'E_PARSE') && /f\.csv: line 2: unterminated/.test(e1.message)).toBe(true);
    expect(isCxrError(err(() => parseCsv('"a"b,c')), 'E_PARSE')).toBe(true);
    expect(isCxrError(err(() => parseCsvTable('a,b\n1,2,3')), 'E_PARSE')).toBe(true);
    expect(isCxrError(err(() => parseCsvTable('a,a\n1,2')), 'E_PARSE')).toBe(true);
    expect(isCxrError(err(() => parseCsvTable('')), 'E_PARSE')).toBe(true);
  });

  test('format then parse round-trips', () => {
    const rows = [['id', 'note'], ['x,1', 'say "hi"\nbye'], [' pad ', '3'], ['n', '']];
    const text = formatCsv(rows);
    expect(parseCsv(text)).toEqual(rows);
    expect(formatCsv([[1.5, NaN, null, undefined]])).toBe('1.5,,,\n');
  });
});
