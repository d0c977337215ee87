using System.Text;

namespace RA3.Model.Tokenizers;

/// <summary>
/// The byte-level tokenizer for tiny runs: ids 0–255 are the UTF-8 bytes, 256 is
/// <c>&lt;|endoftext|&gt;</c>. No training, no files; every string round-trips.
/// </summary>
public sealed class ByteTokenizer : TextTokenizer
{
    /// <summary>The end-of-text marker as it appears in text.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    private static readonly HashSet<int> Specials = [256];

    /// <inheritdoc/>
    public override string Name => "bytes";

    /// <inheritdoc/>
    public override int VocabSize => 257;

    /// <inheritdoc/>
    public override int? EndOfText => 256;

    /// <inheritdoc/>
    public override IReadOnlySet<int> SpecialIds => Specials;

    /// <inheritdoc/>
    public override string Decode(ReadOnlySpan<int> ids)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id is >= 0 and < 256)
            {
                bytes.Add((byte)id);
                continue;
            }

            text.Append(Encoding.UTF8.GetString([.. bytes]));
            bytes.Clear();
            text.Append(id == 256 ? EndOfTextToken : throw new ArgumentOutOfRangeException(nameof(ids), $"id {id} is outside the byte vocabulary [0, 257)"));
        }

        return text.Append(Encoding.UTF8.GetString([.. bytes])).ToString();
    }

    /// <inheritdoc/>
    protected override void EncodeText(string text, bool specialTokensAsText, List<int> ids, List<int>? starts)
    {
        int from = 0;
        while (from < text.Length)
        {
            int marker = specialTokensAsText ? -1 : text.IndexOf(EndOfTextToken, from, StringComparison.Ordinal);
            int end = marker < 0 ? text.Length : marker;
            AppendBytes(text, from, end, ids, starts);
            if (marker < 0)
            {
                break;
            }

            ids.Add(256);
            starts?.Add(marker);
            from = marker + EndOfTextToken.Length;
        }
    }

    // One id per UTF-8 byte; a character's bytes all start where it does (a lone surrogate is U+FFFD's bytes, as UTF-8 encoders write it).
    private static void AppendBytes(string text, int from, int end, List<int> ids, List<int>? starts)
    {
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = from; i < end;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i, end - i), out var rune, out int used) != System.Buffers.OperationStatus.Done)
            {
                rune = Rune.ReplacementChar;
            }

            int n = rune.EncodeToUtf8(utf8);
            for (int k = 0; k < n; k++)
            {
                ids.Add(utf8[k]);
                starts?.Add(i);
            }

            i += Math.Max(used, 1);
        }
    }
}
