import { isCxrError } from '../../../lib/errors';
import { canonicalSectionName, parseOpenIXml, parseReport, parseReportColumns, sectionText } from '../../../lib/text/reportParser';

const names = (t: string) => parseReport(t).sections.map((s) => s.name);

describe('parseReport', () => {
  it('parses MIMIC-style FINDINGS/IMPRESSION reports (as the synthetic generator writes them)', () => {
    const r = parseReport('FINDINGS: Mild cardiomegaly. No effusion.\n\nIMPRESSION: Cardiomegaly.\n');
    expect(r.sections).toEqual([
      { name: 'findings', header: 'FINDINGS', text: 'Mild cardiomegaly. No effusion.' },
      { name: 'impression', header: 'IMPRESSION', text: 'Cardiomegaly.' },
    ]);
  });

  it('gives the same sections for LF, CRLF and CR line ends', () => {
    const t = 'INDICATION: Cough.\n\nFINDINGS: Clear lungs.\nNo effusion.\n\nIMPRESSION: Normal.';
    const lf = parseReport(t);
    expect(parseReport(t.replace(/\n/g, '\r\n'))).toEqual(lf);
    expect(parseReport(t.replace(/\n/g, '\r'))).toEqual(lf);
  });

  it('maps header spellings to canonical names and keeps unknown upper-case headers as other', () => {
    expect(canonicalSectionName('CONCLUSION')).toBe('impression');
    expect(canonicalSectionName('Reason for examination')).toBe('indication');
    expect(canonicalSectionName('RECOMMENDATION(S)')).toBe('recommendation');
    expect(canonicalSectionName('Comparisons')).toBe('comparison');
    expect(canonicalSectionName('Heart size')).toBeUndefined();
    const r = parseReport('WET READ: no pneumonia\nFINDINGS: clear');
    expect(r.sections[0]).toEqual({ name: 'other', header: 'WET READ', text: 'no pneumonia' });
  });

  it('does not take ordinary text with a colon for a header', () => {
    expect(names('Heart size: normal. Lungs: clear.')).toEqual(['findings']);
    expect(names('Obtained at 10:45 with the patient upright.')).toEqual(['findings']);
  });

  it('does not take a wrapped lower-case header word for a header (found by the property test)', () => {
    expect(parseReport('FINDINGS: Contour stable vs.\nprior\nIMPRESSION: ok').sections[0].text).toBe('Contour stable vs.\nprior');
  });

  it('recognises a header alone on its line and a header broken over two lines', () => {
    const r = parseReport('REASON FOR\nEXAMINATION: Dyspnea.\nIMPRESSION\nNo acute process.');
    expect(r.sections.map((s) => [s.name, s.header, s.text])).toEqual([
      ['indication', 'REASON FOR EXAMINATION', 'Dyspnea.'],
      ['impression', 'IMPRESSION', 'No acute process.'],
    ]);
  });

  it('finds known headers inside a line, and not a header word right after another header', () => {
    expect(names('FINDINGS: Clear. IMPRESSION: Normal.')).toEqual(['findings', 'impression']);
    const r = parseReport('INDICATION: History: ___M with cough.\nFINDINGS: Clear.');
    expect(r.sections[0]).toEqual({ name: 'indication', header: 'INDICATION', text: 'History: ___M with cough.' });
  });

  it('drops the FINAL REPORT title and keeps leading text as a header-less section', () => {
    const r = parseReport('FINAL REPORT\nCHEST RADIOGRAPH\nFINDINGS: Clear.');
    expect(r.sections[0]).toEqual({ name: 'other', header: null, text: 'CHEST RADIOGRAPH' });
    expect(parseReport('Leading words.\nIMPRESSION: x', { leading: 'findings' }).sections[0].name).toBe('findings');
  });

  it('makes a report without headers one section (findings by default)', () => {
    expect(parseReport('cardiomegalia . derrame pleural').sections).toEqual([{ name: 'findings', header: null, text: 'cardiomegalia . derrame pleural' }]);
    expect(parseReport('No acute process.', { headerless: 'impression' }).sections[0].name).toBe('impression');
  });

  it('handles empty input, headers-only reports and binary junk without throwing', () => {
    expect(parseReport('')).toEqual({ sections: [] });
    expect(parseReport('\n \r\n\t')).toEqual({ sections: [] });
    const h = parseReport('FINDINGS:\nIMPRESSION:');
    expect(h.sections.map((s) => [s.name, s.text])).toEqual([
      ['findings', ''],
      ['impression', ''],
    ]);
    const junk = String.fromCharCode(...Array.from({ length: 4000 }, (_, i) => (i * 7919) % 65536));
    expect(() => parseReport(junk)).not.toThrow();
    for (const s of parseReport(junk).sections) expect(s.text).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/);
  });

  it('tidies section text: trimmed lines, one blank line at most', () => {
    const r = parseReport('FINDINGS:\n   line one   \n\n\n\n  line two\n');
    expect(r.sections[0].text).toBe('line one\n\nline two');
  });

  it('rejects a non-string with E_PARSE', () => {
    try {
      parseReport(42 as unknown as string);
      throw new Error('no throw');
    } catch (e) {
      expect(isCxrError(e, 'E_PARSE')).toBe(true);
    }
  });

  it('concatenates chosen sections with sectionText', () => {
    const r = parseReport('INDICATION: a\nFINDINGS: b\nIMPRESSION: c');
    expect(sectionText(r, ['findings', 'impression'])).toBe('b\n\nc');
  });
});

describe('parseReportColumns', () => {
  it('reads CheXpert-Plus section columns in column order and ignores other columns', () => {
    const r = parseReportColumns({
      path_to_image: 'train/patient1/study1/view1_frontal.jpg',
      section_narrative: 'whole text',
      section_clinical_history: 'Cough.',
      section_comparison: '',
      section_findings: 'The heart is enlarged.\r\nNo effusion.',
      section_impression: '1. Cardiomegaly.',
      section_accession_number: '123',
    });
    expect(r.sections.map((s) => [s.name, s.header, s.text])).toEqual([
      ['history', 'section_clinical_history', 'Cough.'],
      ['findings', 'section_findings', 'The heart is enlarged.\nNo effusion.'],
      ['impression', 'section_impression', '1. Cardiomegaly.'],
    ]);
  });

  it('reads Open-I CSV columns', () => {
    const r = parseReportColumns({ uid: '1', indication: 'Chest pain', findings: 'Clear lungs.', impression: 'Normal.', MeSH: 'normal' });
    expect(r.sections.map((s) => s.name)).toEqual(['indication', 'findings', 'impression']);
  });

  it('falls back to the whole-report column, and to nothing when every column is empty or missing', () => {
    expect(parseReportColumns({ section_findings: '', report: 'FINDINGS: a. IMPRESSION: b.' }).sections.map((s) => s.name)).toEqual(['findings', 'impression']);
    expect(parseReportColumns({ section_findings: undefined, id: 'x' })).toEqual({ sections: [] });
  });
});

describe('parseOpenIXml', () => {
  it('reads AbstractText sections, decodes entities and drops nested tags', () => {
    const r = parseOpenIXml(
      '<x><AbstractText Label="FINDINGS">Size &lt;2 cm &amp; <b>stable</b> &#65;.</AbstractText><AbstractText Label=\'IMPRESSION\'>Normal.</AbstractText><AbstractText Label="ODD">z</AbstractText></x>',
    );
    expect(r.sections).toEqual([
      { name: 'findings', header: 'FINDINGS', text: 'Size <2 cm & stable A.' },
      { name: 'impression', header: 'IMPRESSION', text: 'Normal.' },
      { name: 'other', header: 'ODD', text: 'z' },
    ]);
  });

  it('stops at an unclosed element and rejects text with no AbstractText', () => {
    expect(parseOpenIXml('<AbstractText Label="FINDINGS">a</AbstractText><AbstractText Label="IMPRESSION">never closed').sections).toHaveLength(1);
    expect(() => parseOpenIXml('plain text')).toThrow(/no <AbstractText>/);
  });
});
