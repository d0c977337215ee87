using System.Runtime.InteropServices;
using RA3.Kernels.Tensors;
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
/// Exploration: each decision is drawn from q = (1 − ε)·p + ε/2 on both branches, p the policy's
/// own probability of thinking, so a model that rarely writes comments still tries rationales; the
/// update weighs each decision by p/q (<see cref="Rollout.LogImportance"/>). 0 = purely on-policy.
/// </param>
public sealed record RolloutOptions(int Group = 4, int LatentMaxTokens = 48, float Temperature = 1f, float TopP = 0.95f, double ThinkFloor = 0.1);

/// <summary>
/// One rollout over a trace: the exact token sequence the policy walked (code lines forced, the
/// think/act decision and the rationale tokens sampled) with each token's owner in the
/// <see cref="LineTokens"/> convention, the decisions, the policy's log-probabilities of the tokens
/// it chose (the "old" policy of the update's ratio), and what the draw departed from the policy.
/// </summary>
/// <param name="Trace">The expert trace.</param>
/// <param name="Ids">Token ids, <see cref="LineTokens.Lead"/> first.</param>
/// <param name="Owner">Per token: 0-based line, <see cref="LineTokens.PrefixOwner"/> or <see cref="LineTokens.RationaleOwner"/>.</param>
/// <param name="Boundary">Per token: the 1-based boundary whose decision or rationale it is (0 for forced tokens).</param>
/// <param name="OldLogProbs">Per token: log π(token | before) at sampling time for chosen tokens, 0 for forced ones.</param>
/// <param name="LogImportance">
/// Per chosen token: log p/q, p the policy's probability of the choice and q the distribution it was
/// drawn from — for a decision, p = π(think)/(π(think) + π(act)) against the exploration mixture; for a
/// rationale token, π against the tempered, nucleus-truncated, control-token-masked draw; 0 for forced tokens.
/// </param>
/// <param name="ThinkIds">Per token: at an act decision, the token that would have opened a comment there (so a line's likelihood can be conditioned on "no comment here"); −1 elsewhere.</param>
/// <param name="Rationales">Per boundary (0-based): the rationale text when the rollout thought there, else null.</param>
public sealed record Rollout(Trace Trace, int[] Ids, int[] Owner, int[] Boundary, float[] OldLogProbs, float[] LogImportance, int[] ThinkIds, string?[] Rationales)
{
    /// <summary>Whether the rollout thought at 1-based boundary <paramref name="t"/>.</summary>
    public bool Thinks(int t) => Rationales[t - 1] is not null;

    /// <summary>Number of rationales written.</summary>
    public int ThinkCount => Rationales.Count(r => r is not null);
}

/// <summary>
/// Samples E-step rollouts (spec §3) for a batch of traces, G per trace, all in one
/// <see cref="DecodeSession"/>. Code tokens are the canonical whole-document encoding's
/// (<see cref="LineTokens"/>): at boundary t the walk encodes the document it has (the rationales
/// chosen so far, acting from t on) and the same document with a comment before line t, appends
/// the tokens the two share, and decides between their first differing tokens — the comment's "#"
/// token against the line's (<see cref="LineTokens.Decision"/>) — from the policy's own
/// probabilities of the two (read on the backend as probes of <see cref="DecodeSession.Sample"/>),
/// renormalised and mixed with the exploration floor. On think it appends the rest of the stub,
/// samples a rationale with control tokens masked until a token with a newline or
/// <see cref="RolloutOptions.LatentMaxTokens"/>, and continues with the canonical tokens of the
/// document with that rationale from the first one starting in line t. Every run of forced tokens
/// up to the next choice goes into one step as a chunk (chunked prefill over the cache), and the
/// tokens after a walk's last choice are never run at all. A boundary acts without a decision
/// where thinking would change tokens already fed, where no decision can be made (<see cref="LineTokens.Decision"/>),
/// or where the line itself starts with the stub (an expert comment).
/// </summary>
public sealed class RolloutSampler
{
    private readonly Transformer model;
    private readonly TextTokenizer tokenizer;
    private readonly bool[] endsLine;
    private readonly int[] banned;
    private readonly int[] newline;

    /// <summary>A sampler of <paramref name="model"/>'s rollouts under <paramref name="tokenizer"/>.</summary>
    public RolloutSampler(Transformer model, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        this.model = model;
        this.tokenizer = tokenizer;
        int vocab = model.Config.VocabSize, text = Math.Min(vocab, tokenizer.VocabSize);
        endsLine = new bool[vocab];
        banned = new int[vocab];
        for (int v = 0; v < vocab; v++)
        {
            // A control token is never rationale text: sampled, it would be decoded to its text and
            // re-encoded as plain text by the M-step, a different sequence from the one the policy saw.
            // Ids past the tokenizer's vocabulary have no text at all.
            banned[v] = v >= text || tokenizer.SpecialIds.Contains(v) ? 1 : 0;
            endsLine[v] = banned[v] == 0 && tokenizer.Decode([v]).Contains('\n', StringComparison.Ordinal);
        }

        newline = tokenizer.Encode("\n", addSpecialTokens: false);
    }

    /// <summary>
    /// The exploration mixture of a decision: with p the policy's probability of thinking and ε the
    /// floor, the branch taken (<paramref name="thinks"/>) was drawn with probability q = (1 − ε)·p + ε/2
    /// (think) or (1 − ε)(1 − p) + ε/2 (act); returns q and log p/q of that branch, the weight that
    /// makes the update an expectation under the policy.
    /// </summary>
    public static (double Q, double LogImportance) Explore(double p, double floor, bool thinks)
    {
        double own = thinks ? p : 1 - p, q = ((1 - floor) * own) + (floor / 2);
        return (q, Math.Log(own) - Math.Log(q));
    }

    /// <summary>Tokens per second of the last call's walk (every token of the rollouts, forced ones included; prefill and sampling in the time).</summary>
    public double LastTokensPerSecond { get; private set; }

    /// <summary>Rows the last call ran through the model (forced tokens after a walk's last choice are never run).</summary>
    public long LastRows { get; private set; }

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
        if (options.Group < 1 || options.LatentMaxTokens < 1 || options.ThinkFloor is < 0 or > 1 || options.Temperature <= 0 || options.TopP is <= 0 or > 1)
        {
            throw new ArgumentException($"rollouts need G ≥ 1, latent_max_tokens ≥ 1, a think floor in [0, 1], a temperature > 0 and top-p in (0, 1]; got {options}");
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

        int w = walks.Count, capacity = walks.Max(x => x.Bound(options.LatentMaxTokens)) + 1;
        using var session = new DecodeSession(model, w, capacity, Math.Max(w, 512));
        using var bannedIds = model.Backend.FromArray(banned, banned.Length);
        var sampling = new SamplingOptions { Temperature = options.Temperature, TopP = options.TopP };
        var counts = new int[w];
        var fed = new List<int>();
        var random = new double[w];
        var probes = new int[2 * w];
        var drawn = new int[w];
        var logProbs = new float[w];
        var drawLogProbs = new float[w];
        var probeLogProbs = new float[2 * w];
        while (true)
        {
            fed.Clear();
            bool choosing = false;
            for (int b = 0; b < w; b++)
            {
                var pending = walks[b].Pending();
                counts[b] = pending.Length;
                fed.AddRange(pending);
                choosing |= walks[b].Choosing;
            }

            if (!choosing)
            {
                break;
            }

            session.Step(counts, CollectionsMarshal.AsSpan(fed));
            for (int b = 0; b < w; b++)
            {
                var walk = walks[b];
                random[b] = walk.Choosing ? walk.NextUniform() : 0;
                (probes[2 * b], probes[(2 * b) + 1]) = walk.Probes;
            }

            session.Sample(random, sampling, bannedIds, probes, drawn, logProbs, drawLogProbs, probeLogProbs);
            for (int b = 0; b < w; b++)
            {
                walks[b].Choose(random[b], drawn[b], logProbs[b], drawLogProbs[b], probeLogProbs[2 * b], probeLogProbs[(2 * b) + 1], options);
            }
        }

        LastRows = session.Rows;
        LastTokensPerSecond = walks.Sum(x => (long)x.Ids.Count) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        return [.. walks.Select(x => x.Result())];
    }

    /// <summary>One rollout's state: the tokens so far, the canonical encoding of its document, and the next choice it waits for.</summary>
    private sealed class Walk(Trace trace, LineTokens acting, RolloutSampler owner, Rng rng)
    {
        private readonly List<int> owners = [];
        private readonly List<int> boundary = [];
        private readonly List<float> oldLogProbs = [];
        private readonly List<float> logImportance = [];
        private readonly List<int> thinkIds = [];
        private readonly string?[] rationales = new string?[trace.Count];
        private readonly Dictionary<int, string> chosen = [];
        private readonly List<int> rationaleTokens = [];
        private readonly int actingLength = acting.Ids.Length;
        private LineTokens document = acting;  // the canonical encoding of the document so far (acting from the current boundary on)
        private LineTokens? thinking;          // the same with a comment before line t (during a decision)
        private int cursor;                    // index in document.Ids of the next canonical token to append
        private int decision;                  // index of the decision token in both encodings
        private int sharedStart;               // index in Ids of the first token appended for this boundary
        private int fed;                       // tokens of Ids already handed to the session
        private int t;                         // current 1-based boundary
        private Phase phase = Phase.NextBoundary;

        private enum Phase
        {
            Decide,
            Rationale,
            NextBoundary,
            Finished,
        }

        public List<int> Ids { get; } = [];

        /// <summary>Whether the walk waits for a choice (the logits after its last token).</summary>
        public bool Choosing => phase is Phase.Decide or Phase.Rationale;

        /// <summary>During a decision, the tokens whose log-probabilities decide it: (think, act); else (−1, −1).</summary>
        public (int Think, int Act) Probes => phase == Phase.Decide ? (thinking!.Ids[decision], document.Ids[decision]) : (-1, -1);

        /// <summary>An upper bound on the walk's length: the acting document, and per boundary a stub, a rationale and its newline.</summary>
        public int Bound(int latentMax) =>
            actingLength + Enumerable.Range(1, trace.Count).Sum(l => trace.IndentBefore(l).Length + 8 + latentMax + owner.newline.Length);

        /// <summary>The walk's next random number (one per choice).</summary>
        public double NextUniform() => rng.NextDouble();

        /// <summary>
        /// Moves on to the next choice (appending the tokens before it) and returns the tokens not yet
        /// handed to the session — nothing once the walk has made its last choice: the tokens after it
        /// need no logits.
        /// </summary>
        public ReadOnlySpan<int> Pending()
        {
            if (phase == Phase.NextBoundary)
            {
                Advance();
            }

            if (phase == Phase.Finished)
            {
                fed = Ids.Count;
                return [];
            }

            var pending = CollectionsMarshal.AsSpan(Ids)[fed..];
            fed = Ids.Count;
            return pending;
        }

        /// <summary>Makes the choice the session's draw allows: a decision from the probes' log-probabilities and <paramref name="u"/>, or the drawn rationale token.</summary>
        public void Choose(double u, int drawn, float logProb, float drawLogProb, float thinkLogProb, float actLogProb, RolloutOptions options)
        {
            if (phase == Phase.Decide)
            {
                Decide(u, thinkLogProb, actLogProb, options.ThinkFloor);
            }
            else if (phase == Phase.Rationale)
            {
                if (drawn < 0)
                {
                    throw new InvalidOperationException($"trace {trace.Id}: the policy's logits hold NaN or allow no rationale token: its weights are not finite");
                }

                RationaleToken(drawn, logProb, drawLogProb, options.LatentMaxTokens);
            }
        }

        public Rollout Result() => new(trace, [.. Ids], [.. owners], [.. boundary], [.. oldLogProbs], [.. logImportance], [.. thinkIds], rationales);

        // Moves to the next boundary where a decision can be made and appends the tokens both branches share; after the last, appends the rest.
        private void Advance()
        {
            while (t < trace.Count)
            {
                t++;
                if (LineTokens.Decision(owner.tokenizer, trace, chosen, t, document, cursor) is not { } point)
                {
                    continue;  // acts without a decision; its tokens are appended with the next boundary's
                }

                sharedStart = Ids.Count;
                Append(document, cursor, point.Index);
                (thinking, decision, cursor) = (point.Thinking, point.Index, point.Index);
                phase = Phase.Decide;
                return;
            }

            Append(document, cursor, document.Ids.Length);
            cursor = document.Ids.Length;
            phase = Phase.Finished;
        }

        // Think or act, drawn from the exploration mixture of the policy's renormalised probability of the two tokens.
        private void Decide(double u, float thinkLogProb, float actLogProb, double floor)
        {
            double p = 1 / (1 + Math.Exp(actLogProb - thinkLogProb));
            if (u < Explore(p, floor, thinks: true).Q)
            {
                for (int i = sharedStart; i < Ids.Count; i++)
                {
                    owners[i] = thinking!.Owner[cursor - (Ids.Count - i)];  // the shared tokens are the comment's where the think branch says so
                }

                // The decision token ends the stub (LineTokens.Decision): the rationale's text comes next.
                Append(thinking!.Ids[decision], thinking.Owner[decision], t, thinkLogProb, (float)Explore(p, floor, thinks: true).LogImportance, -1);
                rationaleTokens.Clear();
                phase = Phase.Rationale;
                return;
            }

            Append(document.Ids[decision], document.Owner[decision], t, actLogProb, (float)Explore(p, floor, thinks: false).LogImportance, thinking!.Ids[decision]);
            cursor = decision + 1;
            phase = Phase.NextBoundary;
        }

        // One rationale token; a newline (or the length limit) ends the comment, then the document resumes at line t.
        private void RationaleToken(int token, float logProb, float drawLogProb, int latentMax)
        {
            bool ends = owner.endsLine[token];
            Append(token, LineTokens.RationaleOwner, t, logProb, logProb - drawLogProb, -1);
            rationaleTokens.Add(token);
            if (!ends && rationaleTokens.Count < latentMax)
            {
                return;
            }

            if (!ends)
            {
                foreach (int id in owner.newline)
                {
                    Append(id, LineTokens.RationaleOwner, 0, 0f, 0f, -1);
                }
            }

            string rationale = Trace.CommentText(owner.tokenizer.Decode(CollectionsMarshal.AsSpan(rationaleTokens)));
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

        private void Append(LineTokens tokens, int from, int to)
        {
            for (int i = from; i < to; i++)
            {
                Append(tokens.Ids[i], tokens.Owner[i], 0, 0f, 0f, -1);
            }
        }

        private void Append(int id, int o, int b, float logProb, float importance, int thinkId)
        {
            Ids.Add(id);
            owners.Add(o);
            boundary.Add(b);
            oldLogProbs.Add(logProb);
            logImportance.Add(importance);
            thinkIds.Add(thinkId);
        }
    }
}
