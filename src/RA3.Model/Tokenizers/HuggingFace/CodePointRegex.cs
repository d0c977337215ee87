using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>Reusable buffers of <see cref="CodePointRegex"/>.</summary>
internal sealed class RegexScratch
{
    /// <summary>The text with one character per code point.</summary>
    public char[] Proxy { get; set; } = new char[1024];

    /// <summary>Per proxy character (and one past the end): its index in the real text.</summary>
    public int[] Map { get; set; } = new int[1025];
}

/// <summary>
/// A tokenizer.json regular expression matched with code-point semantics, as Hugging Face's
/// (Oniguruma) and JavaScript's (<c>u</c> flag) engines match it. .NET matches UTF-16 units, so
/// an emoji or a CJK extension letter would be two surrogates that are neither letters nor one
/// character: <c>[^\r\n\p{L}\p{N}]?\p{L}+</c> on "😀abc" would split differently. Text with
/// surrogates is matched through a proxy with one character per code point — astral ones replaced
/// by a BMP character of the same Unicode category — and the matches are mapped back. (A pattern
/// that names an astral character literally does not see it; none of the known ones does.)
/// </summary>
internal sealed class CodePointRegex
{
    private readonly Regex regex;

    /// <summary>Compiles <paramref name="pattern"/>; a pattern .NET cannot read throws <see cref="ArgumentException"/>.</summary>
    public CodePointRegex(string pattern)
    {
        Pattern = pattern;
        regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    /// <summary>The pattern as written.</summary>
    public string Pattern { get; }

    /// <summary>Appends every match in <paramref name="text"/> (UTF-16 indices, start and end) to <paramref name="output"/>, empty matches included.</summary>
    public void Matches(ReadOnlySpan<char> text, List<(int Start, int End)> output, RegexScratch scratch)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in regex.EnumerateMatches(text))
            {
                output.Add((m.Index, m.Index + m.Length));
            }

            return;
        }

        if (scratch.Proxy.Length < text.Length)
        {
            scratch.Proxy = new char[text.Length * 2];
            scratch.Map = new int[(text.Length * 2) + 1];
        }

        int n = 0;
        for (int i = 0; i < text.Length;)
        {
            scratch.Map[n] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                scratch.Proxy[n++] = Representative(Rune.GetUnicodeCategory(new Rune(text[i], text[i + 1])));
                i += 2;
            }
            else
            {
                scratch.Proxy[n++] = text[i++];
            }
        }

        scratch.Map[n] = text.Length;
        foreach (var m in regex.EnumerateMatches(scratch.Proxy.AsSpan(0, n)))
        {
            output.Add((scratch.Map[m.Index], scratch.Map[m.Index + m.Length]));
        }
    }

    // A BMP character of each category that no known pattern names literally.
    private static char Representative(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u0391',
        UnicodeCategory.LowercaseLetter => '\u03B1',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.Format => '\u2060',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u2039',
        UnicodeCategory.FinalQuotePunctuation => '\u203A',
        UnicodeCategory.OtherPunctuation => '\u203B',
        UnicodeCategory.MathSymbol => '\u2200',
        UnicodeCategory.CurrencySymbol => '\u20A0',
        UnicodeCategory.ModifierSymbol => '\u02C2',
        UnicodeCategory.OtherSymbol => '\u2600',
        _ => '\u0378',  // unassigned (no astral space, line, paragraph or control characters exist)
    };
}
