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

/// <summary>The E-step's settings (spec §3): the symbols c, k, G and latent_max_tokens, and the RL update's.</summary>
/// <param name="ThinkCost">c, nats charged per rationale in the reward (the ELBO's cost is <see cref="ElboOptions.ThinkCost"/>; the midtrainer sets both from one option).</param>
/// <param name="Horizon">k, expert lines after a boundary whose log-likelihood is its reward.</param>
/// <param name="Rollouts">G, latent_max_tokens and the sampling of rationales.</param>
/// <param name="Update">The policy-gradient update.</param>
/// <param name="TracesPerStep">Traces per update (each with G rollouts).</param>
/// <param name="Passes">Passes over the traces (every trace gets candidates on the last).</param>
/// <param name="NormaliseAdvantages">Divide advantages by the group's standard deviation.</param>
public sealed record EStepOptions(
    double ThinkCost = 0.05,
    int Horizon = 1,
    RolloutOptions? Rollouts = null,
    PolicyGradientOptions? Update = null,
    int TracesPerStep = 4,
    int Passes = 1,
    bool NormaliseAdvantages = true)
{
    /// <summary>The rollout settings in force.</summary>
    public RolloutOptions RolloutSettings => Rollouts ?? new RolloutOptions();

    /// <summary>The update settings in force.</summary>
    public PolicyGradientOptions UpdateSettings => Update ?? new PolicyGradientOptions();
}

/// <summary>One E-step update's figures.</summary>
/// <param name="Step">Update number (1-based).</param>
/// <param name="MeanReward">Mean per-boundary reward r_t over the batch's rollouts.</param>
/// <param name="ThinkRate">Share of boundaries where the rollouts thought.</param>
/// <param name="Update">The policy-gradient update's own figures.</param>
/// <param name="RolloutTokensPerSecond">Tokens the rollouts walked per second.</param>
public sealed record EStepProgress(int Step, double MeanReward, double ThinkRate, PolicyStepStats Update, double RolloutTokensPerSecond);

/// <summary>What the E-step leaves: per trace the best sampled rationale of each boundary (null where no rollout thought).</summary>
/// <param name="Candidates">Per trace, per boundary (0-based).</param>
/// <param name="Progress">Per update.</param>
/// <param name="RolloutTokens">Tokens walked by all rollouts.</param>
/// <param name="RolloutSeconds">Time spent sampling.</param>
public sealed record EStepResult(IReadOnlyList<string?[]> Candidates, IReadOnlyList<EStepProgress> Progress, long RolloutTokens, double RolloutSeconds);

/// <summary>Where and how often an E-step checkpoints itself, so that a kill or a stop signal inside it loses at most <paramref name="Every"/> updates.</summary>
/// <param name="Dir">Run folder of the E-step's checkpoints (<c>checkpoints/step-N</c> under it, as <see cref="TrainingCheckpoint"/> writes them).</param>
/// <param name="Every">Updates between checkpoints; a stop signal also writes one at the next update.</param>
/// <param name="Identity">The run's identity: a checkpoint of another run is refused.</param>
/// <param name="Log">Where resume and corruption notices go.</param>
public sealed record EStepCheckpoints(string Dir, int Every, string Identity, Action<string> Log);

/// <summary>
/// The E-step (spec §3): latent discovery by RL. The scorer — the round's M-step model, frozen —
/// rewards each boundary with r_t = log π(a_t..a_{t+k−1} | s_t, z_t) − c·[think], measured by the
/// model's fused segment-scoring loss on the rollout's own tokens; rollouts of one trace are
/// compared boundary by boundary (the group-relative advantage of r_t over the G rollouts), and the
/// advantage is credited to that boundary's decision token and rationale tokens; the policy
/// update carries a KL penalty to the scorer (the policy at the start of the round).
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

    // Doubles round-trip exactly in System.Text.Json's shortest form; −∞ marks a boundary no rollout thought at.
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
        var candidates = traces.Select(t => new string?[t.Count]).ToArray();
        var best = traces.Select(t => Enumerable.Repeat(double.NegativeInfinity, t.Count).ToArray()).ToArray();
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
                var (batch, rewards) = Gather(mine, StepRewards(mine), chosen, traces, rollouts.Group);
                walked += batch.Sum(r => (long)r.Ids.Length);
                var sequences = new List<PolicySequence>(batch.Count);
                double rewardSum = 0;
                long boundaries = 0, thinks = 0;
                for (int c = 0; c < chosen.Length; c++)
                {
                    int trace = chosen[c], lines = traces[trace].Count;
                    var advantages = new double[rollouts.Group][];
                    for (int g = 0; g < rollouts.Group; g++)
                    {
                        advantages[g] = new double[lines];
                    }

                    var group = new double[rollouts.Group];
                    for (int t = 0; t < lines; t++)
                    {
                        for (int g = 0; g < rollouts.Group; g++)
                        {
                            group[g] = rewards[(c * rollouts.Group) + g][t];
                        }

                        var a = Rewards.GroupAdvantages(group, options.NormaliseAdvantages);
                        for (int g = 0; g < rollouts.Group; g++)
                        {
                            advantages[g][t] = a[g];
                            var r = batch[(c * rollouts.Group) + g];
                            rewardSum += group[g];
                            boundaries++;
                            if (r.Thinks(t + 1))
                            {
                                thinks++;
                                if (group[g] > best[trace][t])
                                {
                                    best[trace][t] = group[g];
                                    candidates[trace][t] = r.Rationales[t];
                                }
                            }
                        }
                    }

                    for (int g = 0; g < rollouts.Group; g++)
                    {
                        sequences.Add(ToPolicySequence(batch[(c * rollouts.Group) + g], advantages[g]));
                    }
                }

                var stats = update.Step(sequences, step);
                var p = new EStepProgress(step, rewardSum / Math.Max(boundaries, 1), thinks / (double)Math.Max(boundaries, 1), stats, sampler.LastTokensPerSecond);
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

    // Every rank's rollouts and their rewards, in the order of the update's traces (each rank
    // sampled a contiguous share); each rollout finds its trace again from its global index.
    private (IReadOnlyList<Rollout> Batch, double[][] Rewards) Gather(IReadOnlyList<Rollout> mine, double[][] rewards, int[] chosen, IReadOnlyList<Trace> traces, int group)
    {
        if (ranks.Size == 1)
        {
            return (mine, rewards);
        }

        int index = 0;
        var all = ranks.Gather(
            [.. mine.Select((r, i) => (Rollout: r, Rewards: rewards[i]))],
            (w, x) =>
            {
                w.WriteArray(x.Rollout.Ids);
                w.WriteArray(x.Rollout.Owner);
                w.WriteArray(x.Rollout.Boundary);
                w.WriteArray(x.Rollout.OldLogProbs);
                w.WriteStrings(x.Rollout.Rationales);
                w.WriteArray(x.Rewards);
            },
            r =>
            {
                var trace = traces[chosen[index++ / group]];
                var rollout = new Rollout(trace, r.ReadArray<int>(), r.ReadArray<int>(), r.ReadArray<int>(), r.ReadArray<float>(), r.ReadStrings());
                return (Rollout: rollout, Rewards: r.ReadArray<double>());
            });
        return ([.. all.Select(x => x.Rollout)], [.. all.Select(x => x.Rewards)]);
    }

    // What an E-step checkpoint keeps besides the policy and its optimizer.
    private sealed record Tables(string?[][] Candidates, double[][] Best, List<EStepProgress> Progress, long RolloutTokens, double RolloutSeconds);

    /// <summary>Per rollout, per boundary: r_t under the scorer (one padded forward pass over the batch).</summary>
    private double[][] StepRewards(IReadOnlyList<Rollout> batch)
    {
        var lineLogProbs = LineLogProbs(scorer, batch);
        var rewards = new double[batch.Count][];
        for (int i = 0; i < batch.Count; i++)
        {
            int lines = batch[i].Trace.Count;
            rewards[i] = new double[lines];
            for (int t = 1; t <= lines; t++)
            {
                rewards[i][t - 1] = Rewards.Step(lineLogProbs[i], t, options.Horizon, batch[i].Thinks(t), options.ThinkCost);
            }
        }

        return rewards;
    }

    /// <summary>Per rollout, per line: log π(line | the rollout's context), the sum over the line's tokens.</summary>
    private static double[][] LineLogProbs(Transformer model, IReadOnlyList<Rollout> batch)
    {
        var logProbs = Scorer.SequenceLogProbs(model, [.. batch.Select(r => r.Ids)]);
        return [.. batch.Select((r, i) => LineTokens.Sum(logProbs[i], r.Owner, r.Trace.Count).Lines)];
    }

    private static PolicySequence ToPolicySequence(Rollout r, double[] advantages)
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

        return new PolicySequence(r.Ids, acting, a, r.OldLogProbs);
    }
}
