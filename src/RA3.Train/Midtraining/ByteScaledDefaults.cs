using System.Text;
using RA3.Model.Tokenizers;
using RA3.Train.Runs;

namespace RA3.Train.Midtraining;

/// <summary>
/// The mid-training sizes that were chosen for the byte tokenizer, where a token is a byte, and so
/// are sizes of text: a rationale of at most 48 bytes (one comment line), M-step sequences of 256
/// bytes (with 8 × 12 of them per round, about two passes over the demo's traces), traces of at
/// most 40 lines (about 1,200 tokens of bytes). With another tokenizer the same text is fewer
/// tokens, so each is converted by the tokenizer's bytes per token b, measured on the run's own
/// traces: latent_max_tokens = 48 / b, mstep-seq-len = 256 / b, and max-lines = 40 · b (the trace
/// cap keeps the token length the byte cap allowed). The byte tokenizer has b = 1 and gets 48, 256
/// and 40 exactly. A value set explicitly is kept; the resolved ones are what the run saves.
/// </summary>
public static class ByteScaledDefaults
{
    /// <summary>A rationale's most bytes.</summary>
    public const int LatentBytes = 48;

    /// <summary>An M-step sequence's bytes.</summary>
    public const int MStepSequenceBytes = 256;

    /// <summary>The trace cap in lines of bytes.</summary>
    public const int TraceLinesOfBytes = 40;

    /// <summary>UTF-8 bytes per token of <paramref name="tokenizer"/>'s document encoding over (up to 256 of) <paramref name="documents"/>; 1 for no text.</summary>
    public static double BytesPerToken(TextTokenizer tokenizer, IEnumerable<string> documents)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(documents);
        long bytes = 0, tokens = 0;
        foreach (string text in documents.Take(256))
        {
            bytes += Encoding.UTF8.GetByteCount(text);
            tokens += tokenizer.EncodeDocument(text).Starts.Count(s => s >= 0);  // the text's own tokens, not the template's
        }

        return tokens == 0 ? 1 : bytes / (double)tokens;
    }

    /// <summary><paramref name="settings"/> with every 0 ("scale to the tokenizer") replaced by its value at <paramref name="bytesPerToken"/>.</summary>
    public static MidtrainSettings Resolve(MidtrainSettings settings, double bytesPerToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytesPerToken);
        if (settings.MStepSequenceLength == 1)
        {
            throw new SettingsException("mstep-seq-len", "1 leaves no next token to predict: give at least 2, or 0 to scale 256 bytes to the tokenizer");
        }

        if (settings.MaxLines == 1)
        {
            throw new SettingsException("max-lines", "a trace of 1 line has no boundary to think at: give at least 2, or 0 to scale to the tokenizer");
        }

        return settings with
        {
            LatentMaxTokens = settings.LatentMaxTokens > 0 ? settings.LatentMaxTokens : Math.Max(4, (int)Math.Round(LatentBytes / bytesPerToken)),
            MStepSequenceLength = settings.MStepSequenceLength > 0 ? settings.MStepSequenceLength : Math.Max(16, (int)Math.Round(MStepSequenceBytes / bytesPerToken)),
            MaxLines = settings.MaxLines > 0 ? settings.MaxLines : Math.Max(2, (int)Math.Round(TraceLinesOfBytes * bytesPerToken)),
        };
    }
}
