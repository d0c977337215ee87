using System.Globalization;
using System.Text.Json.Serialization;
using System.Text.Json;
using RA3.Model.IO;
using RA3.Model.Inference;
using RA3.Model.Optim;
using RA3.Model.Scoring;
using RA3.Model.Tokenizers;
using RA3.Model;
using RA3.Train.Distributed;
using RA3.Train.Runs;

namespace RA3.Train.Midtraining;

/// <summary>The baseline an E-step advantage subtracts from r_t (spec §3).</summary>
public enum EStepBaseline
{
    /// <summary>The mean of r_t over the trace's G rollouts (GRPO/RLOO-style).</summary>
    Group,

    /// <summary>
    /// The temporal-ELBO posterior's expected r_t (spec §3 (c)): the exact expectation, over every
    /// segmentation of the update's candidates (the rollouts' rationales, up to G per boundary), of
    /// the same horizon's line log-likelihoods minus c·P(think) — from the DP's line marginals, not
    /// from G samples.
    /// </summary>
    Elbo,
}

/// <summary>The E-step's settings (spec §3): the symbols c, k, G and latent_max_tokens, and the RL update's.</summary>
/// <param name="ThinkCost">c, nats charged per rationale in the reward (the ELBO's cost is <see cref="ElboOptions.ThinkCost"/>; the midtrainer sets both from one option).</param>
/// <param name="Horizon">k, expert lines after a boundary whose log-likelihood is its reward; 0: the abstraction's span, from the boundary to the next think.</param>
/// <param name="Rollouts">G, latent_max_tokens and the sampling of rationales.</param>
/// <param name="Update">The policy-gradient update.</param>
/// <param name="TracesPerStep">Traces per update (each with G rollouts).</param>
/// <param name="Passes">Passes over the traces (every trace gets candidates on the last).</param>
/// <param name="NormaliseAdvantages">Divide a trace's advantages by their standard deviation pooled over its boundaries and rollouts.</param>
/// <param name="Baseline">What r_t is compared with.</param>
/// <param name="Epochs">μ: updates on each batch of rollouts (from the second on the ratio moves and the clip acts).</param>
/// <param name="Candidates">K: rationales kept per boundary for the inference (the best by reward, distinct).</param>
/// <param name="Elbo">The ELBO the posterior baseline uses (α, c, max span, whether a rationale's own log-probability enters its prior — which also enters the reward then).</param>
public sealed record EStepOptions(
    double ThinkCost = 0.05,
    int Horizon = 1,
    RolloutOptions? Rollouts = null,
    PolicyGradientOptions? Update = null,
    int TracesPerStep = 4,
    int Passes = 1,
    bool NormaliseAdvantages = true,
    EStepBaseline Baseline = EStepBaseline.Group,
    int Epochs = 1,
    int Candidates = 1,
    ElboOptions? Elbo = null)
{
    /// <summary>The rollout settings in force.</summary>
    public RolloutOptions RolloutSettings => Rollouts ?? new RolloutOptions();

    /// <summary>The update settings in force.</summary>
    public PolicyGradientOptions UpdateSettings => Update ?? new PolicyGradientOptions();

    /// <summary>The ELBO settings in force.</summary>
    public ElboOptions ElboSettings => Elbo ?? new ElboOptions(ThinkCost: ThinkCost);
}

/// <summary>One E-step update's figures.</summary>
/// <param name="Step">Update number (1-based).</param>
/// <param name="MeanReward">Mean per-boundary reward r_t over the batch's rollouts.</param>
/// <param name="ThinkRate">Share of boundaries where the rollouts thought.</param>
/// <param name="Update">The policy-gradient update's own figures.</param>
/// <param name="RolloutTokensPerSecond">Tokens the rollouts walked per second.</param>
/// <param name="DecisionRate">Share of boundaries where a decision could be made at all.</param>
public sealed record EStepProgress(int Step, double MeanReward, double ThinkRate, PolicyStepStats Update, double RolloutTokensPerSecond, double DecisionRate = 0);

/// <summary>What the E-step leaves: per trace, per boundary, the best sampled rationales (up to K, best first; none where no rollout thought).</summary>
/// <param name="Candidates">Per trace, per boundary (0-based).</param>
/// <param name="Progress">Per update.</param>
/// <param name="RolloutTokens">Tokens walked by all rollouts.</param>
/// <param name="RolloutSeconds">Time spent sampling.</param>
public sealed record EStepResult(IReadOnlyList<string[][]> Candidates, IReadOnlyList<EStepProgress> Progress, long RolloutTokens, double RolloutSeconds);

/// <summary>Where and how often an E-step checkpoints itself, so that a kill or a stop signal inside it loses at most <paramref name="Every"/> updates.</summary>
/// <param name="Dir">Run folder of the E-step's checkpoints (<c>checkpoints/step-N</c> under it, as <see cref="TrainingCheckpoint"/> writes them).</param>
/// <param name="Every">Updates between checkpoints; a stop signal also writes one at the next update.</param>
/// <param name="Identity">The run's identity: a checkpoint of another run is refused.</param>
/// <param name="Log">Where resume and corruption notices go.</param>
public sealed record EStepCheckpoints(string Dir, int Every, string Identity, Action<string> Log);

/// <summary>
/// The E-step (spec §3): latent discovery by RL. The scorer — the round's M-step model, frozen —
/// rewards each boundary with r_t = log π(a_t..a_{t+k−1} | s_t, z_t) − c·[think] (lines taken given
/// the decision, <see cref="Rewards.LineLogProbs"/>), measured by the model's fused segment-scoring
/// loss on the rollout's own tokens; each r_t is compared with its baseline (the group mean over
/// the G rollouts of the trace, or the ELBO posterior's expectation), and the advantage is credited
/// to that boundary's decision token and rationale tokens. The policy update carries a KL penalty
/// to the scorer (the policy at the start of the round), whose log-probabilities the reward pass has
/// already computed, and weighs each token drawn off-policy by its importance weight.
/// <para>
/// Data-parallel (<paramref name="parallel"/>), each rank samples and scores the rollouts of its
/// share of an update's traces (each rollout's random stream keyed by its global index), the
/// ranks gather the rollouts and rewards in trace order, and every rank then keeps the same
/// best-candidate tables and takes its share of the policy update.
/// </para>
/// </summary>
public sealed class EStep(Transformer policy, Transformer scorer, TextTokenizer tokenizer, EStepOptions options, NonFiniteGuard? guard = null, DataParallel? parallel = null)
{
    private readonly DataParallel ranks = parallel ?? DataParallel.Alone;

    private const string TablesFile = "estep-tables.json";

    // Doubles round-trip exactly in System.Text.Json's shortest form.
    private static readonly JsonSerializerOptions TableJson = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Updates an E-step over <paramref name="traceCount"/> traces takes.</summary>
    public static int Steps(int traceCount, EStepOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Passes * ((traceCount + options.TracesPerStep - 1) / options.TracesPerStep);
    }

    /// <summary>
    /// Runs the E-step over <paramref name="traces"/>; <paramref name="progress"/> gets each update's
    /// figures. With <paramref name="checkpoints"/> it resumes from the newest intact checkpoint there
    /// (the policy, AdamW's moments and the best-candidate tables; the trace order and the rollouts'
    /// seeds are functions of the seed and the update number) and ends where the uninterrupted run
    /// would, bit for bit; it writes one every <see cref="EStepCheckpoints.Every"/> updates and at the
    /// update a stop signal arrived in (before <paramref name="progress"/> sees that update).
    /// </summary>
    public EStepResult Run(IReadOnlyList<Trace> traces, ulong seed, Action<EStepProgress>? progress = null, EStepCheckpoints? checkpoints = null)
    {
        ArgumentNullException.ThrowIfNull(traces);
        if (options.Baseline == EStepBaseline.Elbo && options.Horizon == 0)
        {
            throw new SettingsException("baseline", "the ELBO baseline needs a horizon of k ≥ 1 lines (the posterior's expectation is taken line by line); --k 0 (the abstraction's span) goes with the group baseline");
        }

        var candidates = traces.Select(t => new string[t.Count][].Select(_ => Array.Empty<string>()).ToArray()).ToArray();
        var best = traces.Select(t => new double[t.Count][].Select(_ => Array.Empty<double>()).ToArray()).ToArray();
        var sampler = new RolloutSampler(policy, tokenizer);
        var rollouts = options.RolloutSettings;
        using var optimizer = ranks.Optimizer(policy, weightDecay: 0f);
        using var update = new PolicyGradient(policy, scorer, optimizer, options.UpdateSettings, guard);
        var log = new List<EStepProgress>();
        long walked = 0;
        double sampling = 0;
        int resumed = 0;
        if (checkpoints is not null && TrainingCheckpoint.LoadNewestIntact(checkpoints.Dir, policy, optimizer, checkpoints.Identity, checkpoints.Log) is var (dir, state))
        {
            var tables = state.Files is { } files && files.TryGetValue(TablesFile, out var text)
                ? JsonSerializer.Deserialize<Tables>(text, TableJson) : null;
            if (tables is null || tables.Candidates.Length != traces.Count || tables.Best.Length != traces.Count || tables.Progress.Count != state.Step)
            {
                throw new InvalidDataException($"{dir}/{TablesFile}: not the tables of this E-step ({traces.Count} traces, {state.Step} updates)");
            }

            (candidates, best, walked, sampling, resumed) = (tables.Candidates, tables.Best, tables.RolloutTokens, tables.RolloutSeconds, state.Step);
            log.AddRange(tables.Progress);
            checkpoints.Log($"E-step resumed from {dir} (update {resumed} of {Steps(traces.Count, options)})");
        }

        var order = Enumerable.Range(0, traces.Count).ToArray();
        var rng = new Rng(seed);
        int step = 0;
        for (int pass = 0; pass < options.Passes; pass++)
        {
            rng.Shuffle(order.AsSpan());
            for (int start = 0; start < order.Length; start += options.TracesPerStep)
            {
                step++;
                if (step <= resumed)
                {
                    continue;  // done before the checkpoint; the shuffles above replay the order
                }

                var chosen = order.Skip(start).Take(options.TracesPerStep).ToArray();
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var (first, count) = ranks.Share(chosen.Length);
                var mine = sampler.Sample([.. chosen.Skip(first).Take(count).Select(i => traces[i])], rollouts, seed ^ ((ulong)step * 0xD1B54A32D192ED03UL), first * rollouts.Group);
                sampling += clock.Elapsed.TotalSeconds;
                var (batch, rewards, referenceLogProbs) = Gather(mine, StepRewards(mine), chosen, traces, rollouts.Group);
                walked += batch.Sum(r => (long)r.Ids.Length);
                var baselines = options.Baseline == EStepBaseline.Elbo ? ElboBaselines(chosen, first, count, traces, batch, rollouts.Group) : null;
                var sequences = new List<PolicySequence>(batch.Count);
                double rewardSum = 0;
                long boundaries = 0, thinks = 0, decisions = 0;
                for (int c = 0; c < chosen.Length; c++)
                {
                    int trace = chosen[c], g = rollouts.Group;
                    var group = Enumerable.Range(0, g).Select(i => rewards[(c * g) + i]).ToArray();
                    var members = batch.Skip(c * g).Take(g).ToList();
                    var advantages = Rewards.Advantages(group, baselines?[c], options.NormaliseAdvantages);
                    for (int i = 0; i < g; i++)
                    {
                        var r = members[i];
                        for (int t = 0; t < traces[trace].Count; t++)
                        {
                            rewardSum += group[i][t];
                            boundaries++;
                            if (r.Thinks(t + 1))
                            {
                                thinks++;
                                Offer(candidates[trace], best[trace], t, r.Rationales[t]!, group[i][t]);
                            }
                        }

                        decisions += r.ThinkIds.Count(x => x >= 0) + r.ThinkCount;  // acts and thinks decided
                        sequences.Add(ToPolicySequence(r, advantages[i], referenceLogProbs[(c * g) + i]));
                    }
                }

                var stats = update.Step(sequences, step, options.Epochs);
                var p = new EStepProgress(step, rewardSum / Math.Max(boundaries, 1), thinks / (double)Math.Max(boundaries, 1), stats, sampler.LastTokensPerSecond, decisions / (double)Math.Max(boundaries, 1));
                log.Add(p);
                Stopping = ranks.Any(StopSignal.Requested);
                if (checkpoints is not null && (step % checkpoints.Every == 0 || Stopping))
                {
                    var tables = new Tables(candidates, best, log, walked, sampling);
                    var files = new Dictionary<string, string> { [TablesFile] = JsonSerializer.Serialize(tables, TableJson) };
                    TrainingCheckpoint.Save(checkpoints.Dir, policy, optimizer, new TrainingState(step, step.ToString(CultureInfo.InvariantCulture), checkpoints.Identity, files), keep: 2);
                }

                progress?.Invoke(p);
            }
        }

        return new EStepResult(candidates, log, walked, sampling);
    }

    /// <summary>Whether a stop signal reached any rank by the last update (all ranks agree, so all stop there): what <c>progress</c> reads to stop.</summary>
    public bool Stopping { get; private set; }

    // Every rank's rollouts, their rewards and their reference log-probabilities, in the order of
    // the update's traces (each rank sampled a contiguous share); each rollout finds its trace again
    // from its global index.
    private (IReadOnlyList<Rollout> Batch, double[][] Rewards, float[][] ReferenceLogProbs) Gather(IReadOnlyList<Rollout> mine, (double[][] Rewards, float[][] ReferenceLogProbs) scored, int[] chosen, IReadOnlyList<Trace> traces, int group)
    {
        if (ranks.Size == 1)
        {
            return (mine, scored.Rewards, scored.ReferenceLogProbs);
        }

        int index = 0;
        var all = ranks.Gather(
            [.. mine.Select((r, i) => (Rollout: r, Rewards: scored.Rewards[i], Reference: scored.ReferenceLogProbs[i]))],
            (w, x) =>
            {
                w.WriteArray(x.Rollout.Ids);
                w.WriteArray(x.Rollout.Owner);
                w.WriteArray(x.Rollout.Boundary);
                w.WriteArray(x.Rollout.OldLogProbs);
                w.WriteArray(x.Rollout.LogImportance);
                w.WriteArray(x.Rollout.ThinkIds);
                w.WriteStrings(x.Rollout.Rationales);
                w.WriteArray(x.Rewards);
                w.WriteArray(x.Reference);
            },
            r =>
            {
                var trace = traces[chosen[index++ / group]];
                var rollout = new Rollout(trace, r.ReadArray<int>(), r.ReadArray<int>(), r.ReadArray<int>(), r.ReadArray<float>(), r.ReadArray<float>(), r.ReadArray<int>(), r.ReadStrings());
                return (Rollout: rollout, Rewards: r.ReadArray<double>(), Reference: r.ReadArray<float>());
            });
        return ([.. all.Select(x => x.Rollout)], [.. all.Select(x => x.Rewards)], [.. all.Select(x => x.Reference)]);
    }

    // What an E-step checkpoint keeps besides the policy and its optimizer.
    private sealed record Tables(string[][][] Candidates, double[][][] Best, List<EStepProgress> Progress, long RolloutTokens, double RolloutSeconds);

    /// <summary>Keeps <paramref name="rationale"/> among boundary t's K best (by reward, distinct texts; an equal reward does not displace an earlier one).</summary>
    private void Offer(string[][] texts, double[][] rewards, int t, string rationale, double reward)
    {
        int at = Array.IndexOf(texts[t], rationale);
        if (at >= 0)
        {
            if (reward <= rewards[t][at])
            {
                return;
            }

            texts[t] = [.. texts[t].Where((_, i) => i != at)];
            rewards[t] = [.. rewards[t].Where((_, i) => i != at)];
        }

        int place = 0;
        while (place < rewards[t].Length && rewards[t][place] >= reward)
        {
            place++;
        }

        if (place >= options.Candidates)
        {
            return;
        }

        texts[t] = [.. texts[t].Take(place), rationale, .. texts[t].Skip(place).Take(options.Candidates - place - 1)];
        rewards[t] = [.. rewards[t].Take(place), reward, .. rewards[t].Skip(place).Take(options.Candidates - place - 1)];
    }

    /// <summary>Per rollout, per boundary: r_t under the scorer (one padded forward pass over the batch), and the scorer's log-probabilities of the rollout's tokens (the KL's reference).</summary>
    private (double[][] Rewards, float[][] ReferenceLogProbs) StepRewards(IReadOnlyList<Rollout> batch)
    {
        bool withRationale = options.ElboSettings.UseRationaleLogProb;
        var (logProbs, thinkLogProbs) = Scorer.SequenceLogProbs(scorer, [.. batch.Select(r => r.Ids)], [.. batch.Select(r => r.ThinkIds)]);
        var rewards = new double[batch.Count][];
        for (int i = 0; i < batch.Count; i++)
        {
            var r = batch[i];
            var lines = Rewards.LineLogProbs(r, logProbs[i], thinkLogProbs[i], decisionFree: !withRationale);
            bool[] thinks = [.. Enumerable.Range(1, r.Trace.Count).Select(r.Thinks)];
            rewards[i] = Rewards.Step(lines, thinks, options.Horizon, options.ThinkCost, withRationale ? Rewards.RationaleLogProbs(r, logProbs[i]) : default);
        }

        return (rewards, logProbs);
    }

    // The ELBO baselines of the update's traces, in their order: each rank scores its share of them
    // (the traces whose rollouts it sampled), and the ranks gather them.
    private List<double[]> ElboBaselines(int[] chosen, int first, int count, IReadOnlyList<Trace> traces, IReadOnlyList<Rollout> batch, int group) =>
        ranks.Gather(
            [.. Enumerable.Range(first, count).Select(c => ElboBaseline(traces[chosen[c]], [.. batch.Skip(c * group).Take(group)]))],
            (w, b) => w.WriteArray(b),
            r => r.ReadArray<double>());

    /// <summary>
    /// The ELBO posterior's expected r_t for each boundary of one trace (spec §3 (c)): its G rollouts'
    /// rationales are the candidates (distinct, in rollout order, up to G per boundary), scored by the
    /// scorer; the DP's line marginals give E[Σ_{l=t}^{t+k−1} seg[z_l, l]] and its think posteriors
    /// the expected cost (and, with the rationale prior, the expected rationale log-probability).
    /// </summary>
    private double[] ElboBaseline(Trace trace, IReadOnlyList<Rollout> group)
    {
        int n = trace.Count;
        var proposals = Enumerable.Range(0, n).Select(t => (IReadOnlyList<string>)[.. group.Select(r => r.Rationales[t]).OfType<string>().Distinct(StringComparer.Ordinal)]).ToList();
        var scores = CandidateScorer.Score(scorer, tokenizer, trace, proposals);
        var elbo = options.ElboSettings;
        var scored = elbo.UseRationaleLogProb ? scores.Joint : scores.DecisionFree;
        var segmentation = SegmentationInference.Infer(scorer.Backend, [scored], elbo)[0];
        return Rewards.PosteriorBaseline(scored, segmentation, options.Horizon, options.ThinkCost, elbo.UseRationaleLogProb);
    }

    private static PolicySequence ToPolicySequence(Rollout r, double[] advantages, float[] referenceLogProbs)
    {
        int n = r.Ids.Length;
        var acting = new bool[n];
        var a = new float[n];
        for (int p = 0; p < n; p++)
        {
            if (r.Boundary[p] > 0)
            {
                acting[p] = true;
                a[p] = (float)advantages[r.Boundary[p] - 1];
            }
        }

        return new PolicySequence(r.Ids, acting, a, r.OldLogProbs, r.LogImportance, referenceLogProbs);
    }
}
