using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model.Config;
using RA3.Model.Generation;
using RA3.Model.Layers;

namespace RA3.Model;

/// <summary>
/// A decoder-only transformer (GPT-2 or Llama/Qwen2 family) written on the ops of
/// <see cref="Backend"/>: forward, hand-written backward, and the prefill and decode passes
/// generation uses. Weights live in one <see cref="ParameterStore"/> with Hugging Face names;
/// gradients, when enabled, in a second store of the same layout.
/// </summary>
public sealed class Transformer : IDisposable
{
    private readonly Tensor? invFreq;
    private Block[] blocks;
    private Norm finalNorm;
    /// <summary>The output head for logits (forward only: its gradient comes from the fused loss in <see cref="Backward(Activations, float)"/>).</summary>
    private readonly Linear head;

    /// <summary>
    /// A zero-initialised model whose weights are stored as <paramref name="weights"/> (float32, or
    /// bfloat16 with float32 activations, gradients and, in training, master weights: the
    /// mixed-precision contract); load weights or call <see cref="InitializeRandom"/>.
    /// </summary>
    public Transformer(Backend backend, ModelConfig config, bool trainable = false, DType weights = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("model config");
        Backend = backend;
        Config = config;
        Weights = new ParameterStore(backend, config, weights);
        if (config.Family.Positions == PositionKind.Rotary)
        {
            invFreq = backend.FromArray(config.Rope.InverseFrequencies(config.HeadDim), config.HeadDim / 2);
        }

        head = new Linear(Weights[Parameters.Head(config)], null, outIn: true, null, null);
        (blocks, finalNorm) = Bind(null);
        if (trainable)
        {
            EnableGradients();
        }
    }

    /// <summary>The backend every op runs on.</summary>
    public Backend Backend { get; }

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>The parameters, with Hugging Face names, stored as <see cref="ParameterStore.DType"/>.</summary>
    public ParameterStore Weights { get; }

    /// <summary>Parameter gradients (same layout as <see cref="Weights"/>), or null for an inference-only model.</summary>
    public ParameterStore? Gradients { get; private set; }

    /// <summary>Allocates the gradient store (zeroed) so <see cref="Backward(Activations, float)"/> can run.</summary>
    public void EnableGradients()
    {
        if (Gradients is null)
        {
            Gradients = new ParameterStore(Backend, Config);
            (blocks, finalNorm) = Bind(Gradients);
        }
    }

    /// <summary>
    /// Whether training plans made from now on keep only the residual stream between blocks and
    /// recompute each block's activations during the backward (activation checkpointing, one
    /// block at a time): a plan's memory falls from L blocks' activations to one block's plus L + 1
    /// residuals, for one extra forward pass of the blocks. Results are the same bit for bit.
    /// </summary>
    public bool RecomputeActivations { get; set; }

    /// <summary>
    /// An activation plan for batches of shape [<paramref name="batch"/>, <paramref name="time"/>].
    /// Train and Score plans compute the loss with the fused segment-scoring kernel and hold no
    /// [N, V] logits unless <paramref name="withLogits"/> asks for them; a Train plan recomputes
    /// the blocks' activations in the backward when <see cref="RecomputeActivations"/> is set.
    /// </summary>
    public Activations Plan(int batch, int time, PassKind kind, bool withLogits = false)
    {
        if (kind == PassKind.Train && Gradients is null)
        {
            throw new InvalidOperationException("a training plan needs gradients: create the model trainable or call EnableGradients()");
        }

        if (kind == PassKind.Extend)
        {
            throw new ArgumentException("an extend plan is made with PlanExtend (it has its own count of logits rows)");
        }

        return new Activations(Backend, Config, batch, time, kind, withLogits, recompute: kind == PassKind.Train && RecomputeActivations);
    }

    /// <summary>An <see cref="PassKind.Extend"/> plan of <paramref name="rows"/> rows whose logits come out at <paramref name="logitRows"/> chosen rows.</summary>
    public Activations PlanExtend(int rows, int logitRows) => new(Backend, Config, rows, 1, PassKind.Extend, withLogits: true, logitRows: logitRows);

    /// <summary>
    /// Initialises the weights as GPT-2 does, from <paramref name="seed"/>: matrices and embeddings
    /// N(0, 0.02²), the projections into the residual stream N(0, (0.02/√(2L))²), norms 1, biases 0.
    /// </summary>
    public void InitializeRandom(ulong seed)
    {
        var rng = new Rng(seed);
        double residualStd = 0.02 / Math.Sqrt(2.0 * Config.Layers);
        var chunk = new float[1 << 16];  // written a chunk at a time: a 7B model's embedding as one float array would be 2.2 GB on top of the weights
        foreach (var spec in Weights.Specs)
        {
            string name = spec.Name;
            bool residual = name.EndsWith("c_proj.weight", StringComparison.Ordinal) || name.EndsWith("o_proj.weight", StringComparison.Ordinal) || name.EndsWith("down_proj.weight", StringComparison.Ordinal);
            double std = residual ? residualStd : 0.02;
            var flat = Weights[name].Reshape(checked((int)spec.Count));
            for (long offset = 0; offset < spec.Count; offset += chunk.Length)
            {
                var values = chunk.AsSpan(0, (int)Math.Min(chunk.Length, spec.Count - offset));
                if (spec.Shape.Length == 2)
                {
                    for (int i = 0; i < values.Length; i++)
                    {
                        values[i] = (float)(rng.NextGaussian() * std);
                    }
                }
                else
                {
                    values.Fill(name.EndsWith(".bias", StringComparison.Ordinal) ? 0f : 1f);
                }

                flat.View(offset, values.Length).CopyFromFloats(values);
            }
        }
    }

    /// <summary>
    /// Forward over a full batch (<see cref="PassKind.Train"/> or <see cref="PassKind.Score"/>):
    /// per-token log-probabilities of the targets through the fused head + log-softmax kernel
    /// (<see cref="Backend.SegmentScores"/>, one "line" per token), logits [N, V] only when the plan
    /// has them; returns the mean loss over the rows with a target (NaN if none).
    /// </summary>
    public double Forward(Activations a)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Kind is not (PassKind.Train or PassKind.Score))
        {
            throw new ArgumentException($"Forward runs Train or Score plans, got {a.Kind}");
        }

        Trunk(a, null);
        Backend.SegmentScores(a.FinalNorm3, Weights[Parameters.Head(Config)], a.Targets, a.LineIds, a.TokenLogProbs, a.HeadLse);
        if (a.Logits is not null)
        {
            head.Forward(Backend, a.FinalNorm, a.Logits);
        }

        return a.TargetCount == 0 ? double.NaN : a.LossSum() / a.TargetCount;
    }

    /// <summary>
    /// After <see cref="Forward"/> on <paramref name="a"/>: per row r, log p(<paramref name="targets"/>[r] | the
    /// row's context) — the same head and fused log-softmax as the loss, for other tokens than the
    /// next one (a row's alternative: what else the model could have written there); 0 where the
    /// target is negative. Writes <paramref name="result"/> [B·T].
    /// </summary>
    public void TargetLogProbs(Activations a, ReadOnlySpan<int> targets, Span<float> result)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Kind is not (PassKind.Train or PassKind.Score) || targets.Length != a.N || result.Length != a.N)
        {
            throw new ArgumentException($"target log-probabilities: a Train or Score plan after its forward, and {a.N} targets and results; got {a.Kind}, {targets.Length} and {result.Length}");
        }

        var lines = new int[a.N];
        var ids = new int[a.N];
        for (int r = 0; r < a.N; r++)
        {
            ids[r] = Math.Max(targets[r], 0);
            lines[r] = targets[r] >= 0 ? r % a.T : -1;
        }

        Config.CheckTokenIds(ids, "targets");
        using var targetT = Backend.FromArray(ids, a.B, a.T);
        using var lineT = Backend.FromArray(lines, a.B, a.T);
        using var scores = Backend.Empty(DType.Float32, a.B, a.T);
        using var lse = Backend.Empty(DType.Float32, a.B, a.T);
        Backend.SegmentScores(a.FinalNorm3, Weights[Parameters.Head(Config)], targetT, lineT, scores, lse);
        scores.CopyTo(result);
    }

    /// <summary>
    /// Backward of the mean loss times <paramref name="lossScale"/> (1/accumulation steps when
    /// accumulating): adds into <see cref="Gradients"/>, which the caller zeroes once per step.
    /// </summary>
    public void Backward(Activations a, float lossScale = 1f)
    {
        var gradients = CheckBackward(a);
        a.FillScoreGradient(a.TargetCount > 0 ? -lossScale / a.TargetCount : 0f);
        BackwardFromScores(a, gradients);
    }

    /// <summary>
    /// Backward of the weighted loss −Σ_r w[r]·log p(target of row r) over the plan's B·T rows
    /// (rows without a target are ignored): the policy-gradient form, with w an advantage on
    /// sampled tokens and 0 elsewhere; w = 1/targets everywhere is <see cref="Backward(Activations, float)"/>.
    /// Adds into <see cref="Gradients"/>.
    /// </summary>
    public void Backward(Activations a, ReadOnlySpan<float> tokenWeights)
    {
        var gradients = CheckBackward(a);
        a.SetScoreGradient(tokenWeights);
        BackwardFromScores(a, gradients);
    }

    // The gradient store, after checking that a backward pass can run on this plan.
    private ParameterStore CheckBackward(Activations a)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Kind != PassKind.Train || Gradients is null)
        {
            throw new ArgumentException("Backward needs a Train plan of a model with gradients, after Forward");
        }

        return Gradients;
    }

    // Everything after ∂loss/∂(log p) of each token is set in the plan's score gradient.
    private void BackwardFromScores(Activations a, ParameterStore gradients)
    {
        var b = Backend;
        var g = a.Grad;
        var c = Config;
        b.Zero(g.Norm);
        string headName = Parameters.Head(c);
        b.SegmentScoresBackward(a.FinalNorm3, Weights[headName], a.Targets, a.LineIds, a.HeadLse, g.Scores, g.Norm3, gradients[headName]);
        b.Zero(g.Residual);
        finalNorm.Backward(b, a.Residual[c.Layers], a.FinalMean, a.FinalRstd, g.Norm, g.Residual);
        int q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim;
        for (int l = c.Layers - 1; l >= 0; l--)
        {
            var blk = blocks[l];
            var x = a.BlockOf(l);
            if (a.Recompute && l < c.Layers - 1)
            {
                // The block's activations from its input residual, into the one shared set (the
                // last block's are still there from the forward).
                BlockForward(l, a, x, null);
            }

            // MLP half: the residual gradient flows straight through and into the MLP.
            blk.Down.Backward(b, x.Activated, g.Residual, g.Activated, accumulate: false);
            b.Zero(g.Hidden);
            if (blk.Up is null)
            {
                b.GeluBackward(x.Hidden, g.Activated, g.Hidden);
                blk.Hidden.Backward(b, x.Norm2, g.Hidden, g.Norm, accumulate: false);
            }
            else
            {
                b.Zero(g.Up!);
                b.SwiGluBackward(x.Hidden, x.Up!, g.Activated, g.Hidden, g.Up!);
                blk.Hidden.Backward(b, x.Norm2, g.Hidden, g.Norm, accumulate: false);
                blk.Up.Backward(b, x.Norm2, g.Up!, g.Norm, accumulate: true);
            }

            blk.Norm2.Backward(b, x.Mid, x.Mean2, x.Rstd2, g.Norm, g.Residual);

            // Attention half.
            blk.Output.Backward(b, x.Attention, g.Residual, g.Attention, accumulate: false);
            b.Zero(g.Q);
            b.Zero(g.K);
            b.Zero(g.V);
            b.FlashAttentionBackward(x.RotatedQ4, x.RotatedK4, x.V4, null, x.Attention4, x.AttentionLse!, g.Attention4, g.Q4, g.K4, g.V4, c.WindowOf(l));
            var (dq, dk) = (g.Q, g.K);
            if (invFreq is not null)
            {
                // Undo the rotation: the projections' gradients are Rᵀ of the rotated ones.
                b.Zero(g.PreRopeQ!);
                b.Zero(g.PreRopeK!);
                b.RopeBackward(g.Q4, a.Positions, invFreq, g.PreRopeQ4!);
                b.RopeBackward(g.K4, a.Positions, invFreq, g.PreRopeK4!);
                (dq, dk) = (g.PreRopeQ!, g.PreRopeK!);
            }

            if (blk.QNorm is not null)
            {
                // Qwen3: through each head's RMSNorm, back to the projections' outputs.
                b.Zero(g.PreNormQ!);
                b.Zero(g.PreNormK!);
                blk.QNorm.Backward(b, x.QHeads, null, x.QRstd!, g.PreRopeQHeads!, g.PreNormQHeads!);
                blk.KNorm!.Backward(b, x.KHeads, null, x.KRstd!, g.PreRopeKHeads!, g.PreNormKHeads!);
                (dq, dk) = (g.PreNormQ!, g.PreNormK!);
            }

            if (blk.Qkv is not null)
            {
                b.CopyColumns(dq, 0, g.Qkv!, 0, q);
                b.CopyColumns(dk, 0, g.Qkv!, q, kv);
                b.CopyColumns(g.V, 0, g.Qkv!, q + kv, kv);
                blk.Qkv.Backward(b, x.Norm1, g.Qkv!, g.Norm, accumulate: false);
            }
            else
            {
                blk.Q!.Backward(b, x.Norm1, dq, g.Norm, accumulate: false);
                blk.K!.Backward(b, x.Norm1, dk, g.Norm, accumulate: true);
                blk.V!.Backward(b, x.Norm1, g.V, g.Norm, accumulate: true);
            }

            blk.Norm1.Backward(b, a.Residual[l], x.Mean1, x.Rstd1, g.Norm, g.Residual);
        }

        b.EmbeddingBackward(a.Ids, g.Residual, gradients[Parameters.Embedding(c)]);
        if (c.Family.Names.Positions is { } positions)
        {
            b.EmbeddingBackward(a.PositionsFlat, g.Residual, gradients[positions]);
        }
    }

    /// <summary>
    /// Runs right-padded prompts [B, T] (a <see cref="PassKind.Prefill"/> plan whose ids are set)
    /// and fills <paramref name="cache"/>; sequence b has <paramref name="lengths"/>[b] real tokens
    /// (causal attention means padding after them changes nothing). Logits [B, V] are those of
    /// each sequence's last prompt token.
    /// </summary>
    public void Prefill(Activations a, KvCache cache, ReadOnlySpan<int> lengths)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(cache);
        if (a.Kind != PassKind.Prefill || cache.B != a.B || lengths.Length != a.B || a.T > cache.Capacity)
        {
            throw new ArgumentException($"prefill: plan {a.Kind} [{a.B}, {a.T}], cache [{cache.B}, {cache.Capacity}] and {lengths.Length} lengths disagree");
        }

        Span<int> rows = a.B <= 1024 ? stackalloc int[a.B] : new int[a.B];
        for (int i = 0; i < a.B; i++)
        {
            if (lengths[i] < 1 || lengths[i] > a.T)
            {
                throw new ArgumentException($"prefill: lengths[{i}] = {lengths[i]} is outside [1, {a.T}]");
            }

            rows[i] = (i * a.T) + lengths[i] - 1;
            cache.Lengths[i] = lengths[i];
        }

        a.LastRows.CopyFrom<int>(rows);
        Trunk(a, cache);
        Backend.Embedding(a.LastRows, a.FinalNorm, a.LastHidden);
        head.Forward(Backend, a.LastHidden, a.Logits!);
    }

    /// <summary>
    /// One decode step: appends <paramref name="tokens"/> [B] at each sequence's current cache
    /// length, advances the lengths, and leaves the next-token logits [B, V] in the plan.
    /// </summary>
    public void Decode(Activations a, KvCache cache, ReadOnlySpan<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(cache);
        if (a.Kind != PassKind.Decode || cache.B != a.B || tokens.Length != a.B)
        {
            throw new ArgumentException($"decode: plan {a.Kind} [{a.B}, {a.T}], cache batch {cache.B} and {tokens.Length} tokens disagree");
        }

        foreach (int len in cache.Lengths)
        {
            if (len >= cache.Capacity)
            {
                throw new InvalidOperationException($"decode: a sequence has {len} positions and the cache holds {cache.Capacity}");
            }

            Config.CheckPositions(len + 1, "decode");
        }

        Config.CheckTokenIds(tokens, "tokens");
        a.Ids.CopyFrom(tokens);
        a.PositionsFlat.CopyFrom<int>(cache.Lengths);
        Trunk(a, cache);
        head.Forward(Backend, a.FinalNorm, a.Logits!);
        for (int i = 0; i < cache.B; i++)
        {
            cache.Lengths[i]++;
        }
    }

    /// <summary>
    /// Appends rows to <paramref name="cache"/> and runs them (an <see cref="PassKind.Extend"/> plan):
    /// row r is token <paramref name="ids"/>[r] of slot <paramref name="slots"/>[r] (−1: padding) at
    /// position <paramref name="positions"/>[r], and attends over that slot's cached positions up to its
    /// own (<see cref="Backend.AttentionCached"/>), so rows of one slot at consecutive positions are a
    /// chunk of its sequence. With <paramref name="logitRows"/> (one row index per logits row, at most
    /// the plan's <see cref="Activations.LogitRows"/>; the rest repeat row 0), the plan's logits hold
    /// the next-token logits after those rows; empty skips the head. The caller keeps the slots'
    /// lengths: <see cref="KvCache.Lengths"/> is not read or advanced here.
    /// </summary>
    public void Extend(Activations a, KvCache cache, ReadOnlySpan<int> ids, ReadOnlySpan<int> slots, ReadOnlySpan<int> positions, ReadOnlySpan<int> logitRows)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(cache);
        if (a.Kind != PassKind.Extend || ids.Length != a.B || slots.Length != a.B || positions.Length != a.B || logitRows.Length > a.LogitRows)
        {
            throw new ArgumentException($"extend: plan {a.Kind} of {a.B} rows and {a.LogitRows} logits rows, but {ids.Length} ids, {slots.Length} slots, {positions.Length} positions and {logitRows.Length} logits rows");
        }

        for (int r = 0; r < a.B; r++)
        {
            if (slots[r] >= cache.B || slots[r] < -1 || positions[r] < 0 || positions[r] >= cache.Capacity)
            {
                throw new ArgumentException($"extend: row {r} has slot {slots[r]} and position {positions[r]}; the cache has {cache.B} slots of {cache.Capacity} positions");
            }

            Config.CheckPositions(positions[r] + 1, "extend");
        }

        Config.CheckTokenIds(ids, "tokens");
        a.Ids.CopyFrom(ids);
        a.PositionsFlat.CopyFrom(positions);
        a.Slots.CopyFrom(slots);
        Trunk(a, cache);
        if (logitRows.IsEmpty)
        {
            return;
        }

        Span<int> rows = a.LogitRows <= 1024 ? stackalloc int[a.LogitRows] : new int[a.LogitRows];
        rows.Clear();
        logitRows.CopyTo(rows);
        a.LastRows.CopyFrom<int>(rows);
        Backend.Embedding(a.LastRows, a.FinalNorm, a.LastHidden);
        head.Forward(Backend, a.LastHidden, a.Logits!);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Weights.Dispose();
        Gradients?.Dispose();
        invFreq?.Dispose();
    }

    /// <summary>Embeddings, every block and the final norm: Residual[0] → FinalNorm.</summary>
    private void Trunk(Activations a, KvCache? cache)
    {
        var b = Backend;
        var c = Config;
        b.Embedding(a.Ids, Weights[Parameters.Embedding(c)], a.Residual[0]);
        if (c.Family.Names.Positions is { } positions)
        {
            b.Embedding(a.PositionsFlat, Weights[positions], a.Projection);
            b.Add(a.Residual[0], a.Projection, a.Residual[0]);
        }

        for (int l = 0; l < c.Layers; l++)
        {
            BlockForward(l, a, a.BlockOf(l), cache);
        }

        finalNorm.Forward(b, a.Residual[c.Layers], a.FinalNorm, a.FinalMean, a.FinalRstd);
    }

    private void BlockForward(int l, Activations a, BlockActivations x, KvCache? cache)
    {
        var b = Backend;
        var c = Config;
        var blk = blocks[l];
        blk.Norm1.Forward(b, a.Residual[l], x.Norm1, x.Mean1, x.Rstd1);
        int q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim;
        if (blk.Qkv is not null)
        {
            blk.Qkv.Forward(b, x.Norm1, x.Qkv!);
            b.CopyColumns(x.Qkv!, 0, x.Q, 0, q);
            b.CopyColumns(x.Qkv!, q, x.K, 0, kv);
            b.CopyColumns(x.Qkv!, q + kv, x.V, 0, kv);
        }
        else
        {
            blk.Q!.Forward(b, x.Norm1, x.Q);
            blk.K!.Forward(b, x.Norm1, x.K);
            blk.V!.Forward(b, x.Norm1, x.V);
        }

        if (blk.QNorm is not null)
        {
            // Qwen3: each head of q and k normalised over D before the rotation.
            blk.QNorm.Forward(b, x.QHeads, x.NormedQHeads!, null, x.QRstd!);
            blk.KNorm!.Forward(b, x.KHeads, x.NormedKHeads!, null, x.KRstd!);
        }

        if (invFreq is not null)
        {
            b.Rope(x.Q4, a.Positions, invFreq, x.RotatedQ4);
            b.Rope(x.K4, a.Positions, invFreq, x.RotatedK4);
        }

        int window = c.WindowOf(l);
        if (a.Kind == PassKind.Extend)
        {
            b.AttentionCached(x.RotatedQ3, x.RotatedK3, x.V3, cache!.Keys[l], cache.Values[l], a.Slots, a.PositionsFlat, x.Attention3, window);
        }
        else if (a.Kind == PassKind.Decode)
        {
            b.AttentionDecode(x.RotatedQ3, x.RotatedK3, x.V3, cache!.Keys[l], cache.Values[l], a.Lengths, x.Attention3, window);
        }
        else
        {
            b.FlashAttention(x.RotatedQ4, x.RotatedK4, x.V4, null, x.Attention4, x.AttentionLse!, window);
            if (cache is not null)
            {
                int width = a.T * c.KvHeads * c.HeadDim;
                b.CopyColumns(x.KeyRows, 0, cache.KeyRows[l], 0, width);
                b.CopyColumns(x.ValueRows, 0, cache.ValueRows[l], 0, width);
            }
        }

        blk.Output.Forward(b, x.Attention, a.Projection);
        blk.Norm2.AddForward(b, a.Residual[l], a.Projection, x.Mid, x.Norm2, x.Mean2, x.Rstd2);
        blk.Hidden.Forward(b, x.Norm2, x.Hidden);
        if (blk.Up is null)
        {
            b.Gelu(x.Hidden, x.Activated);
        }
        else
        {
            blk.Up.Forward(b, x.Norm2, x.Up!);
            b.SwiGlu(x.Hidden, x.Up!, x.Activated);
        }

        blk.Down.Forward(b, x.Activated, a.Projection);
        b.Add(x.Mid, a.Projection, a.Residual[l + 1]);
    }

    private (Block[] Blocks, Norm Final) Bind(ParameterStore? g)
    {
        var c = Config;
        var w = Weights;
        var blockViews = Enumerable.Range(0, c.Layers).Select(l => new Block(c, l, w, g)).ToArray();
        string final = c.Family.Names.FinalNorm;
        bool layerNorm = c.Family.Norm == NormKind.LayerNorm;
        var norm = new Norm(w[final + ".weight"], layerNorm ? w[final + ".bias"] : null, g?[final + ".weight"], layerNorm ? g?[final + ".bias"] : null, rms: !layerNorm, c.NormEps);
        return (blockViews, norm);
    }
}
