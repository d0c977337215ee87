using System.Diagnostics;
using RA3.Model.Config;
using RA3.Model.Tokenizers;

namespace RA3.Model.Generation;

/// <summary>
/// Batched generation with a KV cache: prompts of different lengths are right-padded and
/// prefilled together (causal attention makes the padding invisible), then every step decodes
/// one token for all sequences at their own positions. Greedy, temperature, top-k, top-p, stop
/// tokens and stop strings; deterministic under a seed.
/// </summary>
public sealed class Generator(Transformer model, TextTokenizer? tokenizer = null)
{
    /// <summary>Timing of the last <see cref="Generate"/> call.</summary>
    public GenerationStats? LastStats { get; private set; }

    /// <summary>
    /// Continues each prompt (token ids, at least one each); <paramref name="onToken"/>, when given,
    /// sees every sampled token as it is drawn (sequence index, token), for streaming.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, Action<int, int>? onToken = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (prompts.Count == 0 || prompts.Any(p => p.Length == 0))
        {
            throw new ArgumentException("generation needs at least one prompt, each of at least one token");
        }

        if (options.StopStrings.Count > 0 && tokenizer is null)
        {
            throw new ArgumentException("stop strings need a tokenizer to decode the generated text");
        }

        var c = model.Config;
        int batch = prompts.Count, longest = prompts.Max(p => p.Length), capacity = longest + options.MaxNewTokens;
        c.CheckPositions(capacity, $"the longest prompt ({longest}) plus {options.MaxNewTokens} new tokens");

        var stops = new HashSet<int>(options.StopTokens);
        var eos = new HashSet<int>(options.StopAtEos ? c.EosTokenIds : []);
        if (options.StopAtEos && tokenizer?.EndOfText is int eot)
        {
            eos.Add(eot);
        }

        var clock = Stopwatch.StartNew();
        using var session = new DecodeSession(model, batch, capacity);
        session.Start(prompts);
        double prefillSeconds = clock.Elapsed.TotalSeconds;

        // Ids past the tokenizer's vocabulary (the model's is rounded up) are never sampled: they have no text.
        int vocab = Math.Min(c.VocabSize, tokenizer?.VocabSize ?? c.VocabSize);
        var sampler = new Sampler(vocab);
        var rngs = Enumerable.Range(0, batch).Select(i => new Rng(options.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(i + 1)))).ToArray();
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>(options.MaxNewTokens)).ToArray();
        var reasons = new string?[batch];
        var texts = new string?[batch];
        var next = new int[batch];
        long produced = 0;
        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            for (int b = 0; b < batch; b++)
            {
                if (reasons[b] is not null)
                {
                    continue;
                }

                int token = sampler.Next(session.Logits(b)[..vocab], options, rngs[b]);
                next[b] = token;
                outputs[b].Add(token);
                onToken?.Invoke(b, token);
                produced++;
                reasons[b] = eos.Contains(token) ? "eos" : stops.Contains(token) ? "stop_token" : StopString(outputs[b], options, out texts[b]);
                if (reasons[b] is null && outputs[b].Count == options.MaxNewTokens)
                {
                    reasons[b] = "length";
                }
            }

            if (reasons.All(r => r is not null) || step == options.MaxNewTokens - 1)
            {
                break;
            }

            session.Feed(next);
        }

        LastStats = new GenerationStats(prompts.Sum(p => (long)p.Length), produced, prefillSeconds, clock.Elapsed.TotalSeconds - prefillSeconds);
        return [.. Enumerable.Range(0, batch).Select(b => new GeneratedSequence(
            [.. outputs[b]],
            texts[b] ?? tokenizer?.Decode(reasons[b] == "eos" ? outputs[b].ToArray().AsSpan(0, outputs[b].Count - 1) : [.. outputs[b]]),
            reasons[b] ?? "length"))];
    }

    /// <summary>
    /// "stop_string" when the decoded text contains a stop string: the tokens are cut after the one
    /// that completed it and the text before the string.
    /// </summary>
    private string? StopString(List<int> tokens, SamplingOptions o, out string? text)
    {
        text = null;
        if (o.StopStrings.Count == 0)
        {
            return null;
        }

        string decoded = tokenizer!.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens));
        int cut = -1;
        foreach (string s in o.StopStrings)
        {
            int at = decoded.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        if (cut < 0)
        {
            return null;
        }

        text = decoded[..cut];
        return "stop_string";
    }
}
