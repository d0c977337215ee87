using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model.IO;

namespace RA3.Model.Scoring;

/// <summary>Scores of a batch: per-token log-probabilities and, when asked, the logits.</summary>
/// <param name="MeanLoss">Mean next-token loss over all targets (Hugging Face causal-LM convention).</param>
/// <param name="Targets">Number of targets.</param>
/// <param name="LogProbs">[B, T−1]: log p(x[t+1] | x[..t]).</param>
/// <param name="Logits">[B, T, V] when requested, else null.</param>
public sealed record Scores(double MeanLoss, long Targets, float[] LogProbs, float[]? Logits);

/// <summary>Next-token scoring of token batches with a model (the engine of <c>ra3 score</c>).</summary>
public static class Scorer
{
    /// <summary>Loads a model from a Hugging Face folder, a checkpoint folder, or a run folder (its latest checkpoint), its weights stored as <paramref name="dtype"/> (null: as the checkpoint stores them).</summary>
    public static Transformer LoadModel(string path, Backend backend, DType? dtype = null)
    {
        if (!HuggingFaceCheckpoint.IsModelFolder(path) && TrainingCheckpoint.Latest(path) is string latest)
        {
            path = latest;
        }

        return HuggingFaceCheckpoint.IsModelFolder(path)
            ? HuggingFaceCheckpoint.Load(path, backend, dtype: dtype)
            : throw new FileNotFoundException($"{path}: not a model folder (config.json + model.safetensors) nor a run folder with checkpoints");
    }

    /// <summary>Scores <paramref name="ids"/> [B, T], one sequence at a time.</summary>
    public static Scores Score(Transformer model, int[] ids, int batch, int time, bool keepLogits)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(ids);
        if (time < 2 || ids.Length != batch * time)
        {
            throw new ArgumentException($"scoring needs [B, T] ids with T ≥ 2, got {ids.Length} ids for [{batch}, {time}]");
        }

        int v = model.Config.VocabSize;
        var logProbs = new float[batch * (time - 1)];
        float[]? logits = keepLogits ? new float[(long)batch * time * v] : null;
        var tokenLogProbs = new float[time];
        double sum = 0;
        using var plan = model.Plan(1, time, PassKind.Score, withLogits: keepLogits);
        for (int b = 0; b < batch; b++)
        {
            plan.SetBatch(ids.AsSpan(b * time, time));
            sum += model.Forward(plan) * (time - 1);
            plan.TokenLogProbs.CopyTo<float>(tokenLogProbs);
            tokenLogProbs.AsSpan(0, time - 1).CopyTo(logProbs.AsSpan(b * (time - 1), time - 1));
            if (logits is not null)
            {
                plan.Logits!.CopyTo<float>(logits.AsSpan(b * time * v, time * v));
            }
        }

        long targets = (long)batch * (time - 1);
        return new Scores(sum / targets, targets, logProbs, logits);
    }

    /// <summary>
    /// Per sequence, per token p ≥ 1: log p(token p | tokens before it) — index 0 is 0 — from
    /// right-padded batches of up to <paramref name="batch"/> sequences of different lengths.
    /// </summary>
    public static float[][] SequenceLogProbs(Transformer model, IReadOnlyList<int[]> sequences, int batch = 16) =>
        SequenceLogProbs(model, sequences, null, batch).LogProbs;

    /// <summary>
    /// <see cref="SequenceLogProbs(Transformer, IReadOnlyList{int[]}, int)"/>, and from the same
    /// forward passes, per sequence and token p ≥ 1 with <paramref name="alternatives"/>[i][p] ≥ 0, log
    /// p(that other token at p | tokens before p) — 0 elsewhere (null: none asked).
    /// </summary>
    public static (float[][] LogProbs, float[][] Alternatives) SequenceLogProbs(Transformer model, IReadOnlyList<int[]> sequences, IReadOnlyList<int[]>? alternatives, int batch = 16)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        if (alternatives is not null && (alternatives.Count != sequences.Count || alternatives.Where((x, i) => x.Length != sequences[i].Length).Any()))
        {
            throw new ArgumentException($"alternatives: one per token of each of the {sequences.Count} sequences");
        }

        var result = new float[sequences.Count][];
        var other = new float[sequences.Count][];
        for (int start = 0; start < sequences.Count; start += batch)
        {
            int b = Math.Min(batch, sequences.Count - start);
            var (ids, mask, time) = Pad([.. sequences.Skip(start).Take(b)]);
            using var plan = model.Plan(b, time, PassKind.Score);
            plan.SetBatch(ids, mask);
            model.Forward(plan);
            var logProbs = new float[b * time];
            plan.TokenLogProbs.CopyTo<float>(logProbs);
            var alternativeLogProbs = new float[b * time];
            if (alternatives is not null)
            {
                // Row p − 1 predicts token p: the alternative for token p is that row's target.
                var targets = new int[b * time];
                Array.Fill(targets, -1);
                for (int i = 0; i < b; i++)
                {
                    var alt = alternatives[start + i];
                    for (int p = 1; p < alt.Length; p++)
                    {
                        targets[(i * time) + p - 1] = alt[p];
                    }
                }

                model.TargetLogProbs(plan, targets, alternativeLogProbs);
            }

            for (int i = 0; i < b; i++)
            {
                int n = sequences[start + i].Length;
                result[start + i] = new float[n];
                other[start + i] = new float[n];
                logProbs.AsSpan(i * time, Math.Max(n - 1, 0)).CopyTo(result[start + i].AsSpan(1));
                alternativeLogProbs.AsSpan(i * time, Math.Max(n - 1, 0)).CopyTo(other[start + i].AsSpan(1));
            }
        }

        return (result, other);
    }

    /// <summary>
    /// Sequences of different lengths as one right-padded [B, T] batch for
    /// <see cref="Activations.SetBatch"/>: ids, the mask of real tokens, and T — the longest rounded
    /// up to a multiple of 16, so a few shapes recur and their plans can be reused — or
    /// <paramref name="time"/> when that is longer (micro-batches of one batch padded alike).
    /// </summary>
    public static (int[] Ids, bool[] Mask, int Time) Pad(IReadOnlyList<int[]> sequences, int time = 0)
    {
        time = Math.Max(time, PaddedLength(sequences));
        var ids = new int[sequences.Count * time];
        var mask = new bool[sequences.Count * time];
        for (int i = 0; i < sequences.Count; i++)
        {
            sequences[i].CopyTo(ids, i * time);
            mask.AsSpan(i * time, sequences[i].Length).Fill(true);
        }

        return (ids, mask, time);
    }

    /// <summary>The T that <see cref="Pad"/> gives <paramref name="sequences"/>: the longest rounded up to a multiple of 16 (at least 2).</summary>
    public static int PaddedLength(IReadOnlyList<int[]> sequences)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        return Math.Max(2, (sequences.Max(s => s.Length) + 15) / 16 * 16);
    }
}
