using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model.Config;
using RA3.Model.Layers;

namespace RA3.Model;

/// <summary>What a forward pass is for, which decides what the plan keeps.</summary>
public enum PassKind
{
    /// <summary>Forward and backward: every layer's activations kept, gradient buffers allocated, logits for every position.</summary>
    Train,

    /// <summary>Forward only (scoring): one set of layer buffers reused by every layer, logits for every position.</summary>
    Score,

    /// <summary>Forward only, filling a KV cache: logits for each sequence's last prompt position.</summary>
    Prefill,

    /// <summary>One generation step (T = 1) over a KV cache.</summary>
    Decode,

    /// <summary>
    /// Rows appended to a KV cache, each at its own slot and position (T = 1, B = rows): chunked
    /// prefill, decode and continuous batching in one pass; logits at one chosen row per slot.
    /// </summary>
    Extend,
}

/// <summary>
/// The activation plan of one batch shape [B, T]: every intermediate tensor of the forward (and,
/// for training, the backward) as a named view into one float buffer and one int buffer,
/// allocated once and reused for every batch of that shape. Row-major [N = B·T, width] views; the
/// attention sees the same memory as [B, T, H, D].
/// </summary>
public sealed class Activations : IDisposable
{
    private readonly Tensor floats;
    private readonly Tensor ints;
    private readonly ModelConfig config;
    private readonly int[] hostTargets;
    private readonly int[] hostLines;
    private readonly float[] hostScores;

    internal Activations(Backend backend, ModelConfig config, int batch, int time, PassKind kind, bool withLogits, bool recompute = false, int logitRows = 0)
    {
        if (batch <= 0 || time <= 0)
        {
            throw new ArgumentException($"batch and time must be positive, got [{batch}, {time}]");
        }

        if (kind is PassKind.Decode or PassKind.Extend && time != 1)
        {
            throw new ArgumentException($"a {kind} plan has T = 1, got {time}");
        }

        if (kind == PassKind.Extend && logitRows < 1)
        {
            throw new ArgumentException($"an extend plan needs at least one logits row, got {logitRows}");
        }

        LogitRows = kind == PassKind.Extend ? logitRows : batch;

        config.CheckPositions(time, "T");
        this.config = config;

        Kind = kind;
        Recompute = recompute;
        HasLogits = withLogits || kind is PassKind.Prefill or PassKind.Decode or PassKind.Extend;
        B = batch;
        T = time;
        N = batch * time;
        var measureF = Arena.Measure();
        var measureI = Arena.Measure();
        Build(config, measureF, measureI);
        var f = Arena.Allocate(backend, DType.Float32, measureF.Used);
        var i = Arena.Allocate(backend, DType.Int32, measureI.Used);
        Build(config, f, i);
        floats = f.Buffer!;
        ints = i.Buffer!;
        hostTargets = new int[N];
        hostLines = new int[N];
        hostScores = new float[N];
        if (kind is not (PassKind.Decode or PassKind.Extend))
        {
            // Full passes see positions 0..T−1 in every sequence; decode and extend rewrite them each step.
            PositionsFlat.CopyFrom<int>([.. Enumerable.Range(0, N).Select(r => r % T)]);
        }
    }

    /// <summary>What this plan serves.</summary>
    public PassKind Kind { get; }

    /// <summary>Bytes of the plan's buffers (what recomputation saves shows here).</summary>
    public long Bytes => (floats.Count * floats.DType.SizeInBytes()) + (ints.Count * ints.DType.SizeInBytes());

    /// <summary>Whether this training plan keeps one block's activations and recomputes each block's in the backward (<see cref="Transformer.RecomputeActivations"/>).</summary>
    public bool Recompute { get; }

    /// <summary>Batch size B.</summary>
    public int B { get; }

    /// <summary>Sequence length T.</summary>
    public int T { get; }

    /// <summary>Rows N = B·T.</summary>
    public int N { get; }

    /// <summary>Token ids [N] (int32; row b·T + t).</summary>
    public Tensor Ids { get; private set; } = null!;

    /// <summary>Positions [B, T] (int32): t for full passes, the cache length for decode.</summary>
    public Tensor Positions { get; private set; } = null!;

    /// <summary>Positions as [N] (GPT-2's learned position lookup).</summary>
    internal Tensor PositionsFlat { get; private set; } = null!;

    /// <summary>Decode: current cache lengths [B] (the same memory as <see cref="Positions"/>).</summary>
    internal Tensor Lengths { get; private set; } = null!;

    /// <summary>Next-token targets [B, T] (int32, negative = no target), for the loss.</summary>
    public Tensor Targets { get; private set; } = null!;

    /// <summary>The segment-scoring line of each row [B, T]: its position t when it has a target, else −1.</summary>
    internal Tensor LineIds { get; private set; } = null!;

    /// <summary>Prefill: the row b·T + (length_b − 1) of each sequence's last prompt token [B]; extend: the row whose logits each logits row gets [<see cref="LogitRows"/>].</summary>
    internal Tensor LastRows { get; private set; } = null!;

    /// <summary>Extend: the cache slot of each row [B] (−1 for a padding row).</summary>
    internal Tensor Slots { get; private set; } = null!;

    /// <summary>Rows of <see cref="Logits"/> for prefill, decode and extend (B, except an extend plan's own count).</summary>
    public int LogitRows { get; }

    /// <summary>The residual stream before each block and after the last: L + 1 tensors [N, C].</summary>
    internal Tensor[] Residual { get; private set; } = null!;

    /// <summary>Per-block buffers: one set per layer when training without recomputation, one shared set otherwise.</summary>
    internal BlockActivations[] Blocks { get; private set; } = null!;

    /// <summary>The buffers block <paramref name="layer"/> uses.</summary>
    internal BlockActivations BlockOf(int layer) => Blocks.Length == 1 ? Blocks[0] : Blocks[layer];

    /// <summary>Output of the attention or MLP projection before it joins the residual [N, C].</summary>
    internal Tensor Projection { get; private set; } = null!;

    /// <summary>Final norm output [N, C], mean and rstd [N].</summary>
    internal Tensor FinalNorm { get; private set; } = null!;

    /// <summary>The final norm output as [B, T, C] (the fused loss's hidden states).</summary>
    internal Tensor FinalNorm3 { get; private set; } = null!;

    internal Tensor FinalMean { get; private set; } = null!;

    internal Tensor FinalRstd { get; private set; } = null!;

    /// <summary>Prefill: final-norm rows at each sequence's last prompt position [B, C]; extend: at each logits row's row [<see cref="LogitRows"/>, C].</summary>
    internal Tensor LastHidden { get; private set; } = null!;

    /// <summary>Whether the plan materialises logits (prefill, decode, or asked for).</summary>
    public bool HasLogits { get; }

    /// <summary>Logits [N, V] (when asked for), or [<see cref="LogitRows"/>, V] for prefill, decode and extend; null otherwise.</summary>
    public Tensor? Logits { get; private set; }

    /// <summary>Per-token log p(target) [B, T] from the fused loss (0 where there is no target).</summary>
    public Tensor TokenLogProbs { get; private set; } = null!;

    /// <summary>Per-token log-sum-exp of the logits [B, T], kept for the fused loss's backward.</summary>
    internal Tensor HeadLse { get; private set; } = null!;

    /// <summary>Training only: gradient buffers shared by all layers.</summary>
    internal ActivationGradients Grad { get; private set; } = null!;

    /// <summary>Number of rows with a target, set by <see cref="SetBatch"/>.</summary>
    public int TargetCount { get; private set; }

    /// <summary>
    /// Loads a batch: <paramref name="ids"/> [B·T] and positions 0..T−1, with next-token targets
    /// (the Hugging Face causal-LM convention: row t predicts ids[t + 1]; the last position of
    /// each sequence, and any position where <paramref name="mask"/> is false for the target, has none).
    /// </summary>
    public void SetBatch(ReadOnlySpan<int> ids, ReadOnlySpan<bool> mask = default)
    {
        if (ids.Length != N)
        {
            throw new ArgumentException($"expected {N} ids for a [{B}, {T}] batch, got {ids.Length}");
        }

        if (!mask.IsEmpty && mask.Length != N)
        {
            throw new ArgumentException($"expected a mask of {N} for a [{B}, {T}] batch, got {mask.Length}");
        }

        config.CheckTokenIds(ids, "ids");
        Ids.CopyFrom(ids);
        int count = 0;
        for (int r = 0; r < N; r++)
        {
            bool has = r % T != T - 1 && (mask.IsEmpty || mask[r + 1]);
            hostTargets[r] = has ? ids[r + 1] : -1;
            hostLines[r] = has ? r % T : -1;
            count += has ? 1 : 0;
        }

        Targets.CopyFrom<int>(hostTargets);
        LineIds.CopyFrom<int>(hostLines);
        TargetCount = count;
    }

    /// <summary>Sum of the per-token losses −Σ log p(target) (read from the device), in double.</summary>
    public double LossSum()
    {
        TokenLogProbs.CopyTo<float>(hostScores);
        double sum = 0;
        foreach (float l in hostScores)
        {
            sum -= l;
        }

        return sum;
    }

    /// <summary>Sets ∂loss/∂(log p) of every token to <paramref name="value"/> (tokens without a target are ignored by the kernel).</summary>
    internal void FillScoreGradient(float value)
    {
        Array.Fill(hostScores, value);
        Grad.Scores.CopyFrom<float>(hostScores);
    }

    /// <summary>Sets ∂loss/∂(log p) of row r to −<paramref name="weights"/>[r] (loss = −Σ w·log p).</summary>
    internal void SetScoreGradient(ReadOnlySpan<float> weights)
    {
        if (weights.Length != N)
        {
            throw new ArgumentException($"expected {N} token weights for a [{B}, {T}] batch, got {weights.Length}");
        }

        for (int r = 0; r < N; r++)
        {
            hostScores[r] = -weights[r];
        }

        Grad.Scores.CopyFrom<float>(hostScores);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        floats.Dispose();
        ints.Dispose();
    }

    private void Build(ModelConfig c, Arena f, Arena i)
    {
        int n = N;
        bool full = Kind is not (PassKind.Decode or PassKind.Extend);
        Ids = i.Take(n);
        Targets = i.Take(B, T);
        LineIds = i.Take(B, T);
        var pos = i.Take(n);
        if (!i.Measuring)
        {
            PositionsFlat = pos;
            Positions = pos.Reshape(B, T);
            Lengths = T == 1 ? pos.Reshape(B) : null!;
        }

        LastRows = i.Take(LogitRows);
        Slots = Kind == PassKind.Extend ? i.Take(B) : null!;
        Residual = [.. Enumerable.Range(0, c.Layers + 1).Select(_ => f.Take(n, c.Hidden))];
        Blocks = [.. Enumerable.Range(0, Kind == PassKind.Train && !Recompute ? c.Layers : 1).Select(_ => new BlockActivations(c, f, B, T, full))];
        Projection = f.Take(n, c.Hidden);
        FinalNorm = f.Take(n, c.Hidden);
        FinalMean = f.Take(n);
        FinalRstd = f.Take(n);
        bool lastOnly = Kind is PassKind.Prefill or PassKind.Extend;
        LastHidden = lastOnly ? f.Take(LogitRows, c.Hidden) : null!;
        Logits = HasLogits ? f.Take(lastOnly || Kind == PassKind.Decode ? LogitRows : n, c.VocabSize) : null;
        TokenLogProbs = f.Take(B, T);
        HeadLse = f.Take(B, T);
        Grad = Kind == PassKind.Train ? new ActivationGradients(c, f, B, T) : null!;
        if (!f.Measuring)
        {
            FinalNorm3 = FinalNorm.Reshape(B, T, c.Hidden);
        }
    }
}

/// <summary>The buffers of one transformer block for one batch shape.</summary>
internal sealed class BlockActivations
{
    public BlockActivations(ModelConfig c, Arena f, int batch, int time, bool full)
    {
        int n = batch * time, q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim;
        bool rotary = c.Family.Positions == PositionKind.Rotary;
        Norm1 = f.Take(n, c.Hidden);
        Mean1 = f.Take(n);
        Rstd1 = f.Take(n);
        Qkv = c.Family.FusedQkv ? f.Take(n, q + (2 * kv)) : null;
        Q = f.Take(n, q);
        K = f.Take(n, kv);
        V = f.Take(n, kv);
        bool qkNorm = c.Family.QkNorm;
        NormedQ = qkNorm ? f.Take(n, q) : null;
        NormedK = qkNorm ? f.Take(n, kv) : null;
        QRstd = qkNorm ? f.Take(n * c.Heads) : null;
        KRstd = qkNorm ? f.Take(n * c.KvHeads) : null;
        RotatedQ = rotary ? f.Take(n, q) : Q;
        RotatedK = rotary ? f.Take(n, kv) : K;
        AttentionLse = full ? f.Take(batch, c.Heads, time) : null;
        Attention = f.Take(n, q);
        Mid = f.Take(n, c.Hidden);
        Norm2 = f.Take(n, c.Hidden);
        Mean2 = f.Take(n);
        Rstd2 = f.Take(n);
        Hidden = f.Take(n, c.Intermediate);
        Up = c.Family.Mlp == MlpKind.SwiGlu ? f.Take(n, c.Intermediate) : null;
        Activated = f.Take(n, c.Intermediate);
        if (!f.Measuring)
        {
            Q4 = (NormedQ ?? Q).Reshape(batch, time, c.Heads, c.HeadDim);
            K4 = (NormedK ?? K).Reshape(batch, time, c.KvHeads, c.HeadDim);
            V4 = V.Reshape(batch, time, c.KvHeads, c.HeadDim);
            QHeads = Q.Reshape(n * c.Heads, c.HeadDim);
            KHeads = K.Reshape(n * c.KvHeads, c.HeadDim);
            NormedQHeads = NormedQ?.Reshape(n * c.Heads, c.HeadDim);
            NormedKHeads = NormedK?.Reshape(n * c.KvHeads, c.HeadDim);
            RotatedQ4 = RotatedQ.Reshape(batch, time, c.Heads, c.HeadDim);
            RotatedK4 = RotatedK.Reshape(batch, time, c.KvHeads, c.HeadDim);
            Attention4 = Attention.Reshape(batch, time, c.Heads, c.HeadDim);
            KeyRows = RotatedK.Reshape(batch, time * kv);
            ValueRows = V.Reshape(batch, time * kv);
            if (time == 1)
            {
                RotatedQ3 = RotatedQ.Reshape(batch, c.Heads, c.HeadDim);
                RotatedK3 = RotatedK.Reshape(batch, c.KvHeads, c.HeadDim);
                V3 = V.Reshape(batch, c.KvHeads, c.HeadDim);
                Attention3 = Attention.Reshape(batch, c.Heads, c.HeadDim);
            }
        }
    }

    public Tensor Norm1 { get; }

    public Tensor Mean1 { get; }

    public Tensor Rstd1 { get; }

    /// <summary>GPT-2's fused projection output [N, 3C].</summary>
    public Tensor? Qkv { get; }

    public Tensor Q { get; }

    public Tensor K { get; }

    public Tensor V { get; }

    /// <summary>Qwen3: q and k after their per-head RMSNorm [N, Hq·D], [N, Hkv·D] (RoPE's inputs), with the norms' rstd [N·Hq], [N·Hkv]; null otherwise.</summary>
    public Tensor? NormedQ { get; }

    public Tensor? NormedK { get; }

    public Tensor? QRstd { get; }

    public Tensor? KRstd { get; }

    /// <summary>The projections' q and k as one row per head [N·H, D] (the QK-norm's rows), and the normed ones.</summary>
    public Tensor QHeads { get; } = null!;

    public Tensor KHeads { get; } = null!;

    public Tensor? NormedQHeads { get; }

    public Tensor? NormedKHeads { get; }

    /// <summary>q and k after RoPE (the same tensors as Q and K in GPT-2).</summary>
    public Tensor RotatedQ { get; }

    public Tensor RotatedK { get; }

    /// <summary>Each query row's attention log-sum-exp [B, Hq, T], for the backward (null in decode).</summary>
    public Tensor? AttentionLse { get; }

    public Tensor Attention { get; }

    /// <summary>Residual after the attention half [N, C].</summary>
    public Tensor Mid { get; }

    public Tensor Norm2 { get; }

    public Tensor Mean2 { get; }

    public Tensor Rstd2 { get; }

    /// <summary>MLP pre-activation: GPT-2's c_fc output, Llama's gate [N, I].</summary>
    public Tensor Hidden { get; }

    /// <summary>Llama's up projection [N, I].</summary>
    public Tensor? Up { get; }

    public Tensor Activated { get; }

    /// <summary>RoPE's inputs as [B, T, H, D]: the projections' q and k, or their QK-normed rows.</summary>
    public Tensor Q4 { get; } = null!;

    public Tensor K4 { get; } = null!;

    public Tensor V4 { get; } = null!;

    public Tensor RotatedQ4 { get; } = null!;

    public Tensor RotatedK4 { get; } = null!;

    public Tensor Attention4 { get; } = null!;

    /// <summary>Rotated keys and values as [B, T·Hkv·D] rows, for copying into a cache.</summary>
    public Tensor KeyRows { get; } = null!;

    public Tensor ValueRows { get; } = null!;

    /// <summary>Decode views [B, H, D].</summary>
    public Tensor RotatedQ3 { get; } = null!;

    public Tensor RotatedK3 { get; } = null!;

    public Tensor V3 { get; } = null!;

    public Tensor Attention3 { get; } = null!;
}

/// <summary>Gradient buffers of the activations, shared by all layers (the backward walks them one block at a time).</summary>
internal sealed class ActivationGradients
{
    public ActivationGradients(ModelConfig c, Arena f, int batch, int time)
    {
        int n = batch * time, q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim;
        Residual = f.Take(n, c.Hidden);
        Norm = f.Take(n, c.Hidden);
        bool rotary = c.Family.Positions == PositionKind.Rotary;
        Qkv = c.Family.FusedQkv ? f.Take(n, q + (2 * kv)) : null;
        Q = f.Take(n, q);
        K = f.Take(n, kv);
        V = f.Take(n, kv);
        PreRopeQ = rotary ? f.Take(n, q) : null;
        PreRopeK = rotary ? f.Take(n, kv) : null;
        PreNormQ = c.Family.QkNorm ? f.Take(n, q) : null;
        PreNormK = c.Family.QkNorm ? f.Take(n, kv) : null;
        Attention = f.Take(n, q);
        Hidden = f.Take(n, c.Intermediate);
        Up = c.Family.Mlp == MlpKind.SwiGlu ? f.Take(n, c.Intermediate) : null;
        Activated = f.Take(n, c.Intermediate);
        Scores = f.Take(batch, time);
        if (!f.Measuring)
        {
            Norm3 = Norm.Reshape(batch, time, c.Hidden);
            Q4 = Q.Reshape(batch, time, c.Heads, c.HeadDim);
            K4 = K.Reshape(batch, time, c.KvHeads, c.HeadDim);
            V4 = V.Reshape(batch, time, c.KvHeads, c.HeadDim);
            PreRopeQ4 = PreRopeQ?.Reshape(batch, time, c.Heads, c.HeadDim);
            PreRopeK4 = PreRopeK?.Reshape(batch, time, c.KvHeads, c.HeadDim);
            PreRopeQHeads = PreRopeQ?.Reshape(n * c.Heads, c.HeadDim);
            PreRopeKHeads = PreRopeK?.Reshape(n * c.KvHeads, c.HeadDim);
            PreNormQHeads = PreNormQ?.Reshape(n * c.Heads, c.HeadDim);
            PreNormKHeads = PreNormK?.Reshape(n * c.KvHeads, c.HeadDim);
            Attention4 = Attention.Reshape(batch, time, c.Heads, c.HeadDim);
        }
    }

    public Tensor Q4 { get; } = null!;

    public Tensor K4 { get; } = null!;

    public Tensor V4 { get; } = null!;

    public Tensor? PreRopeQ4 { get; }

    public Tensor? PreRopeK4 { get; }

    public Tensor Attention4 { get; } = null!;

    public Tensor Residual { get; }

    public Tensor Norm { get; }

    public Tensor? Qkv { get; }

    public Tensor Q { get; }

    public Tensor K { get; }

    public Tensor V { get; }

    /// <summary>Gradients before the rotation (rotary models), or null.</summary>
    public Tensor? PreRopeQ { get; }

    public Tensor? PreRopeK { get; }

    /// <summary>Qwen3: gradients before the QK-norm (the projections' outputs), or null.</summary>
    public Tensor? PreNormQ { get; }

    public Tensor? PreNormK { get; }

    /// <summary>The rotation's and the QK-norm's gradients as one row per head [N·H, D].</summary>
    public Tensor? PreRopeQHeads { get; }

    public Tensor? PreRopeKHeads { get; }

    public Tensor? PreNormQHeads { get; }

    public Tensor? PreNormKHeads { get; }

    public Tensor Attention { get; }

    public Tensor Hidden { get; }

    /// <summary>The gated MLP's up-projection gradient (SwiGLU), or null.</summary>
    public Tensor? Up { get; }

    public Tensor Activated { get; }

    /// <summary>∂loss/∂(per-token log p) [B, T].</summary>
    public Tensor Scores { get; }

    /// <summary>The norm gradient as [B, T, C].</summary>
    public Tensor Norm3 { get; } = null!;
}
