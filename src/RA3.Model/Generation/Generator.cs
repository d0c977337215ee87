using System.Diagnostics;
using RA3.Kernels.Tensors;
using RA3.Model.Tokenizers;

namespace RA3.Model.Generation;

/// <summary>One sequence to generate: its prompt and the random stream its tokens are drawn from.</summary>
/// <param name="Prompt">Token ids (at least one).</param>
/// <param name="Seed">Seed of the stream (with <paramref name="Stream"/>).</param>
/// <param name="Stream">Which stream of the seed: the draws depend on (seed, stream) alone, never on the other sequences of a batch.</param>
/// <param name="StopStrings">Strings that end this sequence (null: the options').</param>
public sealed record GenerationRequest(int[] Prompt, ulong Seed, int Stream, IReadOnlyList<string>? StopStrings = null);

/// <summary>
/// Batched generation with a KV cache and continuous batching: up to a number of slots are
/// generated together in one <see cref="DecodeSession"/>; a prompt joins as one chunk of rows
/// (chunked prefill, beside the other slots' decode rows), each step appends every active slot's
/// last token, and a finished sequence leaves its slot to the next waiting one. Tokens are drawn on
/// the backend (<see cref="DecodeSession.Sample"/>: greedy, temperature, top-k, top-p); stop tokens
/// and stop strings end a sequence; deterministic under a seed.
/// </summary>
public sealed class Generator(Transformer model, TextTokenizer? tokenizer = null)
{
    /// <summary>Timing of the last <see cref="Generate"/> or <see cref="GenerateAll"/> call.</summary>
    public GenerationStats? LastStats { get; private set; }

    /// <summary>
    /// Continues each prompt (token ids, at least one each), all in one batch, sequence i drawing from
    /// stream (seed, i); <paramref name="onToken"/>, when given, sees every sampled token as it is
    /// drawn (sequence index, token), for streaming.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, Action<int, int>? onToken = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        return GenerateAll([.. prompts.Select((p, i) => new GenerationRequest(p, options.Seed, i))], options, Math.Max(prompts.Count, 1), onToken);
    }

    /// <summary>
    /// Generates every request with the shared <paramref name="options"/> (the seed and stop strings
    /// come from each request), at most <paramref name="slots"/> at a time: a finished sequence's
    /// slot takes the next request in order. Results are in request order; with
    /// <paramref name="entropies"/>, each carries the entropy of every token's distribution.
    /// <paramref name="cancel"/> is checked before every step.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> GenerateAll(IReadOnlyList<GenerationRequest> requests, SamplingOptions options, int slots, Action<int, int>? onToken = null, bool entropies = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (requests.Count == 0 || requests.Any(r => r.Prompt.Length == 0) || slots < 1)
        {
            throw new ArgumentException("generation needs at least one prompt, each of at least one token, and at least one slot");
        }

        if ((options.StopStrings.Count > 0 || requests.Any(r => r.StopStrings is { Count: > 0 })) && tokenizer is null)
        {
            throw new ArgumentException("stop strings need a tokenizer to decode the generated text");
        }

        var c = model.Config;
        int longest = requests.Max(r => r.Prompt.Length), capacity = longest + options.MaxNewTokens;
        c.CheckPositions(capacity, $"the longest prompt ({longest}) plus {options.MaxNewTokens} new tokens");
        var stops = new HashSet<int>(options.StopTokens);
        var eos = new HashSet<int>(options.StopAtEos ? c.EosTokenIds : []);
        if (options.StopAtEos && tokenizer?.EndOfText is int eot)
        {
            eos.Add(eot);
        }

        var clock = Stopwatch.StartNew();
        int s = Math.Min(slots, requests.Count), n = requests.Count;
        using var session = new DecodeSession(model, s, Math.Max(capacity, 1), Math.Max(s, 256));
        using var banned = BannedIds();
        var outputs = new List<int>[n];
        var reasons = new string?[n];
        var texts = new string?[n];
        var rngs = new Rng?[n];
        var occupant = new int[s];
        var counts = new int[s];
        var random = new double[s];
        var drawn = new int[s];
        var logProbs = new float[s];
        var drawLogProbs = new float[s];
        var entropy = new float[entropies ? s : 0];
        var tokenEntropies = new List<float>?[n];
        var fed = new List<int>();
        int next = 0, running = 0;
        long produced = 0, promptTokens = 0;
        double prefillSeconds = -1;
        for (int slot = 0; slot < s; slot++)
        {
            occupant[slot] = Admit(slot);
        }

        while (running > 0)
        {
            cancel.ThrowIfCancellationRequested();
            session.Step(counts, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(fed));
            prefillSeconds = prefillSeconds < 0 ? clock.Elapsed.TotalSeconds : prefillSeconds;
            for (int slot = 0; slot < s; slot++)
            {
                random[slot] = occupant[slot] >= 0 ? rngs[occupant[slot]]!.NextDouble() : 0;
            }

            session.Sample(random, options, banned, [], drawn, logProbs, drawLogProbs, [], entropy);
            fed.Clear();
            for (int slot = 0; slot < s; slot++)
            {
                int i = occupant[slot];
                counts[slot] = 0;
                if (i < 0)
                {
                    continue;
                }

                int token = drawn[slot];
                if (token < 0)
                {
                    throw new InvalidOperationException($"sequence {i}: the logits hold NaN or allow no token (every allowed one is -inf): the model's weights or inputs are not finite");
                }

                outputs[i].Add(token);
                tokenEntropies[i]?.Add(entropy[slot]);
                onToken?.Invoke(i, token);
                produced++;
                reasons[i] = eos.Contains(token) ? "eos" : stops.Contains(token) ? "stop_token" : StopString(outputs[i], requests[i].StopStrings ?? options.StopStrings, out texts[i]);
                if (reasons[i] is null && outputs[i].Count >= options.MaxNewTokens)
                {
                    reasons[i] = "length";
                }

                if (reasons[i] is null)
                {
                    counts[slot] = 1;
                    fed.Add(token);
                    continue;
                }

                running--;
                session.Reset(slot);
                occupant[slot] = Admit(slot);
            }
        }

        LastStats = new GenerationStats(promptTokens, produced, Math.Max(prefillSeconds, 0), clock.Elapsed.TotalSeconds - Math.Max(prefillSeconds, 0));
        return [.. Enumerable.Range(0, n).Select(i => new GeneratedSequence(
            [.. outputs[i]],
            texts[i] ?? tokenizer?.Decode(reasons[i] == "eos" ? outputs[i].ToArray().AsSpan(0, outputs[i].Count - 1) : [.. outputs[i]]),
            reasons[i] ?? "length",
            tokenEntropies[i]?.ToArray()))];

        // The next waiting request enters `slot` (its prompt is fed in the next step); −1 when none is left.
        int Admit(int slot)
        {
            if (next >= n)
            {
                return -1;
            }

            int i = next++;
            var r = requests[i];
            outputs[i] = new List<int>(options.MaxNewTokens);
            tokenEntropies[i] = entropies ? new List<float>(options.MaxNewTokens) : null;
            rngs[i] = new Rng(r.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(r.Stream + 1)));
            if (options.MaxNewTokens == 0)
            {
                reasons[i] = "length";
                return Admit(slot);
            }

            c.CheckTokenIds(r.Prompt, $"prompt {i}");
            counts[slot] = r.Prompt.Length;
            fed.AddRange(r.Prompt);
            promptTokens += r.Prompt.Length;
            running++;
            return i;
        }
    }

    /// <summary>Ids past the tokenizer's vocabulary (the model's is rounded up) are never sampled: they have no text. Null when there are none.</summary>
    private Tensor? BannedIds()
    {
        int vocab = model.Config.VocabSize, text = Math.Min(vocab, tokenizer?.VocabSize ?? vocab);
        return text == vocab ? null : model.Backend.FromArray([.. Enumerable.Range(0, vocab).Select(v => v >= text ? 1 : 0)], vocab);
    }

    /// <summary>
    /// "stop_string" when the decoded text contains a stop string: the tokens are cut after the one
    /// that completed it and the text before the string.
    /// </summary>
    private string? StopString(List<int> tokens, IReadOnlyList<string> stopStrings, out string? text)
    {
        text = null;
        if (stopStrings.Count == 0)
        {
            return null;
        }

        string decoded = tokenizer!.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens));
        int cut = -1;
        foreach (string stop in stopStrings)
        {
            int at = decoded.IndexOf(stop, StringComparison.Ordinal);
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
