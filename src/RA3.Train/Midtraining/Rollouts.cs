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
/// <param name="Ids">Token ids, <see cref="LineTokens.Lead"/> first.</param>
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
/// <see cref="DecodeSession"/>. Code tokens are the canonical whole-document encoding's
/// (<see cref="LineTokens"/>), fed lazily: at boundary t the walk encodes the document it has
/// (the rationales chosen so far, acting from t on) and the same document with a comment before
/// line t, feeds the tokens the two share, and samples the decision between their first
/// differing tokens — under the canonical encoding, the comment stub's first token against the
/// line's (or, where a token straddles the boundary, the two encodings of it: GPT-2's "\n\n" of a
/// blank line against the "\n" before a comment) — from the policy's own probabilities of the
/// two, renormalised and mixed with the exploration floor. On think it feeds the rest of the stub
/// ("indent#"), samples a rationale with control tokens masked until a token with a newline or
/// <see cref="RolloutOptions.LatentMaxTokens"/>, and continues with the canonical tokens of the
/// document with that rationale from the first one starting in line t: the comment line's tokens
/// are the policy's samples, every other token is the M-step's. A boundary acts without a
/// decision where thinking would change tokens already fed, where the stub's end falls inside a
/// token, or where the line itself starts with the stub (an expert comment).
/// </summary>
public sealed class RolloutSampler
{
    /// <summary>The rationale text the think branch is encoded with before the real one is sampled (only the stub's tokens are used).</summary>
    private const string Probe = "x";

    private readonly Transformer model;
    private readonly TextTokenizer tokenizer;
    private readonly bool[] endsLine;
    private readonly bool[] masked;
    private readonly int[] newline;

    /// <summary>A sampler of <paramref name="model"/>'s rollouts under <paramref name="tokenizer"/>.</summary>
    public RolloutSampler(Transformer model, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        this.model = model;
        this.tokenizer = tokenizer;
        endsLine = new bool[Math.Min(model.Config.VocabSize, tokenizer.VocabSize)];  // also the ids a rationale may sample: those with text
        masked = new bool[endsLine.Length];
        for (int v = 0; v < endsLine.Length; v++)
        {
            // A control token is never rationale text: sampled, it would be decoded to its text and
            // re-encoded as plain text by the M-step, a different sequence from the one the policy saw.
            masked[v] = tokenizer.SpecialIds.Contains(v);
            endsLine[v] = !masked[v] && tokenizer.Decode([v]).Contains('\n', StringComparison.Ordinal);
        }

        newline = tokenizer.Encode("\n", addSpecialTokens: false);
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
        var acting = traces.Select(t => LineTokens.Of(tokenizer, t)).ToArray();
        var walks = new List<Walk>(traces.Count * options.Group);
        for (int i = 0; i < traces.Count; i++)
        {
            for (int g = 0; g < options.Group; g++)
            {
                walks.Add(new Walk(traces[i], acting[i], this, new Rng(seed ^ (0x9E3779B97F4A7C15UL * (ulong)(firstRollout + walks.Count + 1)))));
            }
        }

        var prompts = walks.Select(w => w.Begin()).ToArray();
        int capacity = walks.Max(w => w.Bound(options.LatentMaxTokens)) + 1;
        using var session = new DecodeSession(model, walks.Count, capacity);
        session.Start(prompts);
        var sampler = new Sampler(endsLine.Length);
        var sampling = new SamplingOptions { Temperature = options.Temperature, TopP = options.TopP };
        var scratch = new float[endsLine.Length];
        var next = new int[walks.Count];
        long fed = 0;
        while (true)
        {
            for (int b = 0; b < walks.Count; b++)
            {
                next[b] = walks[b].Next(session.Logits(b), sampler, sampling, options, scratch);
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

    /// <summary>One rollout's state: the tokens so far, the canonical encoding of its document, and a queue of tokens to force before the next choice.</summary>
    private sealed class Walk(Trace trace, LineTokens acting, RolloutSampler owner, Rng rng)
    {
        private readonly Queue<(int Token, int Owner)> forced = new();
        private readonly List<int> owners = [];
        private readonly List<int> boundary = [];
        private readonly List<float> oldLogProbs = [];
        private readonly string?[] rationales = new string?[trace.Count];
        private readonly Dictionary<int, string> chosen = [];
        private readonly List<int> rationaleTokens = [];
        private readonly int actingLength = acting.Ids.Length;
        private LineTokens document = acting;  // the canonical encoding of the document so far (acting from the current boundary on)
        private LineTokens? thinking;          // the same with a comment before line t (during a decision)
        private int cursor;                    // index in document.Ids of the next canonical token to feed
        private int decision;                  // index of the decision token in both encodings
        private int stubEnd;                   // index in thinking.Ids one past the stub's last token
        private int sharedStart;               // index in Ids of the first token fed for this boundary
        private int t;                         // current 1-based boundary
        private Phase phase = Phase.NextBoundary;

        private enum Phase
        {
            Decide,
            Rationale,
            NextBoundary,
            Finishing,
            Finished,
        }

        public List<int> Ids { get; } = [];

        /// <summary>Whether every token of the walk has been handed out.</summary>
        public bool Finished => phase == Phase.Finished;

        /// <summary>An upper bound on the walk's length: the acting document, and per boundary a stub, a rationale and its newline.</summary>
        public int Bound(int latentMax) =>
            actingLength + Enumerable.Range(1, trace.Count).Sum(l => trace.IndentBefore(l).Length + 8 + latentMax + owner.newline.Length);

        /// <summary>Takes every token forced before the first choice (the prefill's prompt).</summary>
        public int[] Begin()
        {
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
        public int Next(ReadOnlySpan<float> logits, Sampler sampler, SamplingOptions sampling, RolloutOptions options, float[] scratch)
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
                        return RationaleToken(logits, sampler, sampling, options, scratch);
                    case Phase.NextBoundary:
                        Advance();
                        break;
                    case Phase.Finishing:
                        phase = Phase.Finished;
                        break;
                    default:
                        return 0;
                }
            }
        }

        public Rollout Result() => new(trace, [.. Ids], [.. owners], [.. boundary], [.. oldLogProbs], rationales);

        // Moves to the next boundary where a decision can be made and queues the tokens both branches share; after the last, queues the rest.
        private void Advance()
        {
            while (t < trace.Count)
            {
                t++;
                var think = LineTokens.Of(owner.tokenizer, trace, new Dictionary<int, string>(chosen) { [t] = Probe });
                int d = 0;
                while (d < document.Ids.Length && d < think.Ids.Length && document.Ids[d] == think.Ids[d])
                {
                    d++;
                }

                // The stub "indent#" ends at a token boundary of the think branch, after the decision token.
                int commentStart = think.Layout.Starts[Array.IndexOf(think.Layout.Lines, -t)];
                int end = commentStart + trace.IndentBefore(t).Length + 1, s = d + 1;
                while (s < think.Ids.Length && think.Starts[s] < end)
                {
                    s++;
                }

                bool decidable = d >= cursor && d < document.Ids.Length && d < think.Ids.Length
                    && s < think.Ids.Length && think.Starts[s] == end && think.Starts[d] < end;
                if (!decidable)
                {
                    continue;  // acts without a decision; its tokens are fed with the next boundary's
                }

                sharedStart = Ids.Count + forced.Count;
                Enqueue(document, cursor, d);
                (thinking, decision, stubEnd, cursor) = (think, d, s, d);
                phase = Phase.Decide;
                return;
            }

            Enqueue(document, cursor, document.Ids.Length);
            cursor = document.Ids.Length;
            phase = Phase.Finishing;
        }

        // Samples think or act between the two encodings' first differing tokens.
        private int Decide(ReadOnlySpan<float> logits, RolloutOptions options)
        {
            int act = document.Ids[decision], think = thinking!.Ids[decision];
            float lt = LogSoftmax(logits, think), la = LogSoftmax(logits, act);
            double pThink = 1 / (1 + Math.Exp(la - lt));
            double explore = ((1 - options.ThinkFloor) * pThink) + (options.ThinkFloor / 2);
            if (rng.NextDouble() < explore)
            {
                for (int i = sharedStart; i < Ids.Count; i++)
                {
                    owners[i] = thinking.Owner[cursor - (Ids.Count - i)];  // the shared tokens are the comment's where the think branch says so
                }

                Append(think, thinking.Owner[decision], t, lt);
                Enqueue(thinking, decision + 1, stubEnd);
                rationaleTokens.Clear();
                phase = Phase.Rationale;
                return think;
            }

            Append(act, document.Owner[decision], t, la);
            cursor = decision + 1;
            phase = Phase.NextBoundary;
            return act;
        }

        // Samples one rationale token (control tokens masked); a newline (or the length limit) ends the comment, then the document resumes at line t.
        private int RationaleToken(ReadOnlySpan<float> logits, Sampler sampler, SamplingOptions sampling, RolloutOptions options, float[] scratch)
        {
            var allowed = scratch.AsSpan(0, Math.Min(logits.Length, scratch.Length));
            logits[..allowed.Length].CopyTo(allowed);
            for (int v = 0; v < allowed.Length; v++)
            {
                if (owner.masked[v])
                {
                    allowed[v] = float.NegativeInfinity;
                }
            }

            int token = sampler.Next(allowed, sampling, rng);
            bool ends = owner.endsLine[token];
            Append(token, LineTokens.RationaleOwner, t, LogSoftmax(logits, token));
            rationaleTokens.Add(token);
            if (ends || rationaleTokens.Count >= options.LatentMaxTokens)
            {
                if (!ends)
                {
                    Enqueue(owner.newline, LineTokens.RationaleOwner);
                }

                string rationale = Trace.CommentText(owner.tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(rationaleTokens)));
                rationales[t - 1] = rationale;
                chosen[t] = rationale;
                document = LineTokens.Of(owner.tokenizer, trace, chosen);
                int lineStart = document.Layout.StartOfLine(t);
                cursor = 0;
                while (cursor < document.Ids.Length && document.Starts[cursor] < lineStart)
                {
                    cursor++;
                }

                phase = Phase.NextBoundary;
            }

            return token;
        }

        private void Enqueue(LineTokens tokens, int from, int to)
        {
            for (int i = from; i < to; i++)
            {
                forced.Enqueue((tokens.Ids[i], tokens.Owner[i]));
            }
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
            owners.Add(o);
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
