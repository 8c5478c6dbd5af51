import { normalizeWhitespace, splitSentences } from '../../../lib/text/sentenceSplitter';

describe('splitSentences', () => {
  it('splits plain sentences and keeps a missing final period', () => {
    expect(splitSentences('The lungs are clear. Heart size is normal. No effusion')).toEqual([
      'The lungs are clear.',
      'Heart size is normal.',
      'No effusion',
    ]);
  });

  it('keeps decimals and measurements together', () => {
    expect(splitSentences('A 2.5 cm nodule. Opacity measures 3.0 x 1.2 cm. Tip 4.5 cm above the carina.')).toEqual([
      'A 2.5 cm nodule.',
      'Opacity measures 3.0 x 1.2 cm.',
      'Tip 4.5 cm above the carina.',
    ]);
  });

  it('does not split after abbreviations', () => {
    expect(splitSentences('Discussed with Dr. Smith at 10 a.m. on the ward. Tube No. 2 is seen. Approx. 3 cm, e.g. a cyst vs. abscess.')).toEqual([
      'Discussed with Dr. Smith at 10 a.m. on the ward.',
      'Tube No. 2 is seen.',
      'Approx. 3 cm, e.g. a cyst vs. abscess.',
    ]);
  });

  it('ends a sentence after a unit abbreviation only before a capital letter', () => {
    expect(splitSentences('Nodule of 8 mm. The heart is normal.')).toEqual(['Nodule of 8 mm.', 'The heart is normal.']);
    expect(splitSentences('Nodule of 8 mm. in the right apex.')).toEqual(['Nodule of 8 mm. in the right apex.']);
  });

  it('removes list numbering at line starts and after sentence ends', () => {
    expect(splitSentences('1. No pneumonia.\n2. Stable cardiomegaly\n3) Small effusion')).toEqual([
      'No pneumonia.',
      'Stable cardiomegaly',
      'Small effusion',
    ]);
    expect(splitSentences('1. No pneumonia. 2. Stable ETT position. 3. NG tube in stomach')).toEqual([
      'No pneumonia.',
      'Stable ETT position.',
      'NG tube in stomach',
    ]);
    expect(splitSentences('- Heart normal\n* Lungs clear\n• No effusion')).toEqual(['Heart normal', 'Lungs clear', 'No effusion']);
  });

  it('does not take a value at a line start for numbering', () => {
    expect(splitSentences('Opacity in the\n2.5 cm region.')).toEqual(['Opacity in the 2.5 cm region.']);
    expect(splitSentences('Seen since\n2019. Stable.')).toEqual(['Seen since 2019.', 'Stable.']);
    // Found by the property test: "No." wrapped before its number.
    expect(splitSentences('Seen on image No.\n2. The heart is normal.')).toEqual(['Seen on image No. 2.', 'The heart is normal.']);
  });

  it('joins wrapped lines and splits at blank lines', () => {
    expect(splitSentences('The heart is\n  normal in size\n\nLungs are clear')).toEqual(['The heart is normal in size', 'Lungs are clear']);
  });

  it('splits at semicolons only when asked', () => {
    const t = 'Low volumes; bibasilar atelectasis; no effusion.';
    expect(splitSentences(t)).toEqual([t]);
    expect(splitSentences(t, { semicolons: true })).toEqual(['Low volumes;', 'bibasilar atelectasis;', 'no effusion.']);
  });

  it('handles ellipses, question and exclamation marks', () => {
    expect(splitSentences('Hyperinflated... Flat diaphragms. Nodule... versus nipple. Pneumonia? Yes!')).toEqual([
      'Hyperinflated...',
      'Flat diaphragms.',
      'Nodule... versus nipple.',
      'Pneumonia?',
      'Yes!',
    ]);
  });

  it('splits PadChest lower-case text with spaced full stops', () => {
    expect(splitSentences('cardiomegalia . no se observan signos de neumonia . pinzamiento')).toEqual([
      'cardiomegalia .',
      'no se observan signos de neumonia .',
      'pinzamiento',
    ]);
  });

  it('collapses repeated white space, CRLF and control characters', () => {
    expect(splitSentences('The   heart\r\nis normal.\u0000\u0007  Lungs\tclear.')).toEqual(['The heart is normal.', 'Lungs clear.']);
  });

  it('returns nothing for empty, blank or punctuation-only text', () => {
    expect(splitSentences('')).toEqual([]);
    expect(splitSentences('  \n\r\n\t ')).toEqual([]);
    expect(splitSentences('. . ... ;')).toEqual([]);
  });

  it('keeps closing quotes and brackets with their sentence', () => {
    expect(splitSentences('Described as "stable." (See prior.) Next one.')).toEqual(['Described as "stable."', '(See prior.)', 'Next one.']);
  });
});

describe('splitSentences: a full stop with no space after it', () => {
  it('splits when a capitalised word follows a word of 2+ letters', () => {
    expect(splitSentences('There is a nodule in the left lung apex.There are streaky opacities in the bases.')).toEqual([
      'There is a nodule in the left lung apex.',
      'There are streaky opacities in the bases.',
    ]);
    expect(splitSentences('Vascularity normal.Calcified breast implants are noted.')).toEqual(['Vascularity normal.', 'Calcified breast implants are noted.']);
  });

  it('keeps abbreviations, decimals, numbering and times whole', () => {
    expect(splitSentences('Seen at 10 a.m.Today stable.')).toEqual(['Seen at 10 a.m.Today stable.']);
    expect(splitSentences('Small opacities, e.g.Right base.')).toEqual(['Small opacities, e.g.Right base.']);
    expect(splitSentences('Findings i.e.Minimal change.')).toEqual(['Findings i.e.Minimal change.']);
    expect(splitSentences('Discussed with Dr.Smith today.')).toEqual(['Discussed with Dr.Smith today.']);
    expect(splitSentences('Nodule 4.5 cm in size.')).toEqual(['Nodule 4.5 cm in size.']);
    expect(splitSentences('See item 1.2.3 below.')).toEqual(['See item 1.2.3 below.']);
    expect(splitSentences('Repeat film at 3 p.m.Stable.')).toEqual(['Repeat film at 3 p.m.Stable.']);
  });

  it('needs a word of 2+ letters on both sides', () => {
    expect(splitSentences('Lesion B.Small.')).toEqual(['Lesion B.Small.']); // one letter before
    expect(splitSentences('Normal.A stable film.')).toEqual(['Normal.A stable film.']); // one letter after
    expect(splitSentences('Size 12.Stable.')).toEqual(['Size 12.Stable.']); // a number before
    expect(splitSentences('Measures 3 cm.Stable.')).toEqual(['Measures 3 cm.Stable.']); // a unit abbreviation
    expect(splitSentences('lungs clear.no effusion.')).toEqual(['lungs clear.no effusion.']); // lower case after
  });
});

describe('normalizeWhitespace', () => {
  it('collapses runs of white space and control characters and trims', () => {
    expect(normalizeWhitespace('  a \n\n b\u0000c\ufffd  ')).toBe('a b c');
    expect(normalizeWhitespace('')).toBe('');
  });
});
