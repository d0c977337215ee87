using RA3.Model;
using RA3.Model.Generation;
using RA3.Model.Tokenizers;

namespace RA3.Train.Midtraining;

/// <summary>How the E-step samples its rollouts.</summary>
/// <param name="Group">G, rollouts per trace.</param>
/// <param name="LatentMaxTokens">Most tokens of one rationale (after "#"); a newline ends it sooner.</param>
/// <param name="Temperature">Sampling temperature of rationale tokens.</param>
/// <param name="TopP">Nucleus of rationale tokens.</param>
/// <param name="ThinkFloor">
/// Exploration: each decision is drawn from (1 − ε)·π(think | s) + ε/2 on both branches, so a
/// model that rarely writes comments still tries rationales (0 = purely on-policy).
/// </param>
public sealed record RolloutOptions(int Group = 4, int LatentMaxTokens = 48, float Temperature = 1f, float TopP = 0.95f, double ThinkFloor = 0.1);

/// <summary>
/// One rollout over a trace: the exact token sequence the policy walked (code lines forced, the
/// think/act decision and the rationale tokens sampled) with each token's owner in the
/// <see cref="LineTokens"/> convention, the decisions, and the policy's log-probabilities of the
/// tokens it chose (the "old" policy of the update's ratio).
/// </summary>
/// <param name="Trace">The expert trace.</param>
/// <param name="Ids">Token ids, the <see cref="LineTokens.Prefix"/> first.</param>
/// <param name="Owner">Per token: 0-based line, <see cref="LineTokens.PrefixOwner"/> or <see cref="LineTokens.RationaleOwner"/>.</param>
/// <param name="Boundary">Per token: the 1-based boundary whose decision or rationale it is (0 for forced tokens).</param>
/// <param name="OldLogProbs">Per token: log π(token | before) at sampling time for chosen tokens, 0 for forced ones.</param>
/// <param name="Rationales">Per boundary (0-based): the rationale text when the rollout thought there, else null.</param>
public sealed record Rollout(Trace Trace, int[] Ids, int[] Owner, int[] Boundary, float[] OldLogProbs, string?[] Rationales)
{
    /// <summary>Whether the rollout thought at 1-based boundary <paramref name="t"/>.</summary>
    public bool Thinks(int t) => Rationales[t - 1] is not null;

    /// <summary>Number of rationales written.</summary>
    public int ThinkCount => Rationales.Count(r => r is not null);
}

/// <summary>
/// Samples E-step rollouts (spec §3) for a batch of traces, G per trace, all in one
/// <see cref="DecodeSession"/>: the walk feeds each expert line's tokens; at boundary t it feeds the
/// tokens that the comment stub ("indent#") and line t share, then samples the decision between
/// their first differing tokens — the policy's own probabilities of writing a comment or the code,
/// renormalised over the two and mixed with the exploration floor — and on think samples a rationale until a newline or
/// <see cref="RolloutOptions.LatentMaxTokens"/>, then feeds line t whole. Boundaries where the line
/// itself starts with the stub (an expert comment) act.
/// </summary>
public sealed class RolloutSampler
{
    private readonly Transformer model;
    private readonly TextTokenizer tokenizer;
    private readonly bool[] endsLine;
    private readonly int[] prefix;
    private readonly int[] newline;

    /// <summary>A sampler of <paramref name="model"/>'s rollouts under <paramref name="tokenizer"/>.</summary>
    public RolloutSampler(Transformer model, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        this.model = model;
        this.tokenizer = tokenizer;
        endsLine = new bool[Math.Min(model.Config.VocabSize, tokenizer.VocabSize)];  // also the ids a rationale may sample: those with text
        for (int v = 0; v < endsLine.Length; v++)
        {
            endsLine[v] = tokenizer.Decode([v]).Contains('\n', StringComparison.Ordinal);
        }

        prefix = tokenizer.Encode(LineTokens.Prefix);
        newline = tokenizer.Encode("\n");
    }

    /// <summary>Tokens per second of the last call's walk (every token fed, forced ones included; prefill and sampling in the time).</summary>
    public double LastTokensPerSecond { get; private set; }

    /// <summary>
    /// G rollouts of each trace, in trace-major order (trace i's are i·G .. i·G + G − 1). Rollout w
    /// of this call draws from its own stream (<paramref name="seed"/>, <paramref name="firstRollout"/> + w):
    /// a rank that samples its share of a step's traces, starting at global rollout
    /// <paramref name="firstRollout"/>, draws what one process sampling all of them draws.
    /// </summary>
    public IReadOnlyList<Rollout> Sample(IReadOnlyList<Trace> traces, RolloutOptions options, ulong seed, int firstRollout = 0)
    {
        ArgumentNullException.ThrowIfNull(traces);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Group < 1 || options.LatentMaxTokens < 1 || options.ThinkFloor is < 0 or > 1)
        {
            throw new ArgumentException($"rollouts need G ≥ 1, latent_max_tokens ≥ 1 and a think floor in [0, 1]; got {options}");
        }

        if (traces.Count == 0)
        {
            return [];
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var lines = traces.Select(Plan).ToArray();
        var walks = new List<Walk>(traces.Count * options.Group);
        for (int i = 0; i < traces.Count; i++)
        {
            for (int g = 0; g < options.Group; g++)
            {
                walks.Add(new Walk(traces[i], lines[i], tokenizer, new Rng(seed ^ (0x9E3779B97F4A7C15UL * (ulong)(firstRollout + walks.Count + 1)))));
            }
        }

        var prompts = walks.Select(w => w.Begin(prefix)).ToArray();
        int capacity = walks.Max(w => w.Bound(prefix.Length, options.LatentMaxTokens, newline.Length)) + prompts.Max(p => p.Length) + 1;
        using var session = new DecodeSession(model, walks.Count, capacity);
        session.Start(prompts);
        var sampler = new Sampler(endsLine.Length);
        var sampling = new SamplingOptions { Temperature = options.Temperature, TopP = options.TopP };
        var next = new int[walks.Count];
        long fed = 0;
        while (true)
        {
            for (int b = 0; b < walks.Count; b++)
            {
                next[b] = walks[b].Next(session.Logits(b), sampler, sampling, options, endsLine, newline);
            }

            if (walks.All(w => w.Finished))
            {
                break;
            }

            session.Feed(next);
            fed += walks.Count(w => !w.Finished);
        }

        LastTokensPerSecond = fed / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        return [.. walks.Select(w => w.Result())];
    }

    // Per line: the comment stub's tokens and the line's tokens (newline included).
    private (int[] Stub, int[] Line)[] Plan(Trace trace)
    {
        var plan = new (int[], int[])[trace.Count];
        for (int t = 1; t <= trace.Count; t++)
        {
            plan[t - 1] = (tokenizer.Encode(trace.IndentBefore(t) + "#"), tokenizer.Encode(trace.Lines[t - 1] + "\n"));
        }

        return plan;
    }

    /// <summary>One rollout's state: the tokens so far and a queue of tokens to force before the next choice.</summary>
    private sealed class Walk(Trace trace, (int[] Stub, int[] Line)[] lines, TextTokenizer tokenizer, Rng rng)
    {
        private readonly Queue<(int Token, int Owner)> forced = new();
        private readonly List<int> owner = [];
        private readonly List<int> boundary = [];
        private readonly List<float> oldLogProbs = [];
        private readonly string?[] rationales = new string?[trace.Count];
        private readonly List<int> rationaleTokens = [];
        private int t;             // current 1-based boundary
        private int shared;        // tokens the stub and line t share (forced before the decision)
        private int sharedStart;   // index in Ids of the first shared token
        private Phase phase = Phase.NextBoundary;

        private enum Phase
        {
            Decide,
            Rationale,
            NextBoundary,
            Finished,
        }

        public List<int> Ids { get; } = [];

        /// <summary>Whether every token of the walk has been handed out.</summary>
        public bool Finished => phase == Phase.Finished;

        /// <summary>An upper bound on the walk's length.</summary>
        public int Bound(int prefixLength, int latentMax, int newlineLength) =>
            prefixLength + lines.Sum(l => l.Line.Length + l.Stub.Length + latentMax + newlineLength);

        /// <summary>Takes the prefix and every token forced before the first choice (the prefill's prompt).</summary>
        public int[] Begin(int[] prefix)
        {
            foreach (int id in prefix)
            {
                Append(id, LineTokens.PrefixOwner, 0, 0f);
            }

            Advance();
            while (forced.Count > 0)
            {
                var (token, o) = forced.Dequeue();
                Append(token, o, 0, 0f);
            }

            return [.. Ids];
        }

        /// <summary>
        /// The token to feed next: a forced one, or one chosen from <paramref name="logits"/> (the
        /// policy after the last fed token); 0 as padding once the walk has finished.
        /// </summary>
        public int Next(ReadOnlySpan<float> logits, Sampler sampler, SamplingOptions sampling, RolloutOptions options, bool[] endsLine, int[] newline)
        {
            while (true)
            {
                if (forced.TryDequeue(out var f))
                {
                    Append(f.Token, f.Owner, 0, 0f);
                    return f.Token;
                }

                switch (phase)
                {
                    case Phase.Decide:
                        return Decide(logits, options);
                    case Phase.Rationale:
                        return RationaleToken(logits, sampler, sampling, options, endsLine, newline);
                    case Phase.NextBoundary:
                        Advance();
                        break;
                    default:
                        return 0;
                }
            }
        }

        public Rollout Result() => new(trace, [.. Ids], [.. owner], [.. boundary], [.. oldLogProbs], rationales);

        // Moves to the next boundary and queues the tokens its stub and line share, or finishes.
        private void Advance()
        {
            if (t == trace.Count)
            {
                phase = Phase.Finished;
                return;
            }

            t++;
            var (stub, line) = lines[t - 1];
            shared = 0;
            while (shared < stub.Length && shared < line.Length && stub[shared] == line[shared])
            {
                shared++;
            }

            sharedStart = Ids.Count + forced.Count;
            if (shared == stub.Length || shared == line.Length)
            {
                Enqueue(line, t - 1);  // no token where a comment and the line part: act
                phase = Phase.NextBoundary;
                return;
            }

            Enqueue(stub.AsSpan(0, shared), t - 1);
            phase = Phase.Decide;
        }

        // Samples think or act between the stub's and the line's first differing tokens.
        private int Decide(ReadOnlySpan<float> logits, RolloutOptions options)
        {
            var (stub, line) = lines[t - 1];
            int think = stub[shared], act = line[shared];
            float lt = LogSoftmax(logits, think), la = LogSoftmax(logits, act);
            double pThink = 1 / (1 + Math.Exp(la - lt));
            double explore = ((1 - options.ThinkFloor) * pThink) + (options.ThinkFloor / 2);
            if (rng.NextDouble() < explore)
            {
                for (int i = sharedStart; i < sharedStart + shared; i++)
                {
                    owner[i] = LineTokens.RationaleOwner;
                }

                Append(think, LineTokens.RationaleOwner, t, lt);
                Enqueue(stub.AsSpan(shared + 1), LineTokens.RationaleOwner);
                rationaleTokens.Clear();
                phase = Phase.Rationale;
                return think;
            }

            Append(act, t - 1, t, la);
            Enqueue(line.AsSpan(shared + 1), t - 1);
            phase = Phase.NextBoundary;
            return act;
        }

        // Samples one rationale token; a newline (or the length limit) ends the comment, then line t follows.
        private int RationaleToken(ReadOnlySpan<float> logits, Sampler sampler, SamplingOptions sampling, RolloutOptions options, bool[] endsLine, int[] newline)
        {
            int token = sampler.Next(logits[..Math.Min(logits.Length, endsLine.Length)], sampling, rng);
            bool ends = endsLine[token];
            Append(token, LineTokens.RationaleOwner, t, LogSoftmax(logits, token));
            rationaleTokens.Add(token);
            if (ends || rationaleTokens.Count >= options.LatentMaxTokens)
            {
                if (!ends)
                {
                    Enqueue(newline, LineTokens.RationaleOwner);
                }

                rationales[t - 1] = Trace.CommentText(tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(rationaleTokens)));
                Enqueue(lines[t - 1].Line, t - 1);
                phase = Phase.NextBoundary;
            }

            return token;
        }

        private void Enqueue(ReadOnlySpan<int> tokens, int o)
        {
            foreach (int id in tokens)
            {
                forced.Enqueue((id, o));
            }
        }

        private void Append(int id, int o, int b, float logProb)
        {
            Ids.Add(id);
            owner.Add(o);
            boundary.Add(b);
            oldLogProbs.Add(logProb);
        }

        private static float LogSoftmax(ReadOnlySpan<float> logits, int token)
        {
            float max = float.NegativeInfinity;
            foreach (float x in logits)
            {
                max = Math.Max(max, x);
            }

            double sum = 0;
            foreach (float x in logits)
            {
                sum += Math.Exp(x - max);
            }

            return (float)(logits[token] - max - Math.Log(sum));
        }
    }
}
