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

    /// <inheritdoc/>
    public override string Name => "bytes";

    /// <inheritdoc/>
    public override int VocabSize => 257;

    /// <inheritdoc/>
    public override int? EndOfText => 256;

    /// <inheritdoc/>
    public override int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        foreach (var (piece, special) in SpecialTokens.Split(text, [EndOfTextToken]))
        {
            if (special)
            {
                ids.Add(256);
            }
            else
            {
                foreach (byte b in Encoding.UTF8.GetBytes(piece))
                {
                    ids.Add(b);
                }
            }
        }

        return [.. ids];
    }

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
}
