using RA3.Kernels.Reference;
using RA3.Kernels.Tensors;

namespace RA3.Kernels.Ops;

/// <summary>The validated public ops; each forwards to a backend's <c>...Core</c> method.</summary>
public abstract partial class Backend
{
    /// <summary>
    /// GEMM: <c>c = alpha · op(a) · op(b) + beta · c + bias</c>. With a rank-2 <paramref name="b"/>
    /// (a weight), the leading dimensions of <paramref name="a"/> and <paramref name="c"/> are
    /// flattened into rows: a [.., K] (or [K, M] with <paramref name="transA"/>), b [K, N] (or
    /// [N, K] with <paramref name="transB"/>), c [.., N]. With a rank-3 b the product is batched:
    /// a [Bt, M, K], b [Bt, K, N], c [Bt, M, N]. bias [N] may be null.
    /// </summary>
    public void Gemm(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha = 1f, float beta = 0f, Tensor? bias = null)
    {
        Own(a, nameof(a));
        Own(b, nameof(b));
        Own(c, nameof(c));
        if (bias is not null)
        {
            Own(bias, nameof(bias));
        }

        string shapes = $"a {a.Shape}{(transA ? "ᵀ" : string.Empty)}, b {b.Shape}{(transB ? "ᵀ" : string.Empty)}, c {c.Shape}";
        int batch, m, n, k;
        if (b.Shape.Rank == 2)
        {
            ShapeCheck.Require(a.Shape.Rank >= 2 || (a.Shape.Rank == 1 && !transA), $"gemm: a must have rank >= 1; {shapes}");
            long aRows = a.Shape.Rows;
            int aCols = a.Shape.Rank == 0 ? 1 : a.Shape[-1];
            batch = 1;
            (m, k) = transA ? (aCols, checked((int)aRows)) : (checked((int)aRows), aCols);
            (int bk, n) = transB ? (b.Shape[1], b.Shape[0]) : (b.Shape[0], b.Shape[1]);
            ShapeCheck.Require(bk == k, $"gemm: inner dimensions differ ({k} vs {bk}); {shapes}");
            ShapeCheck.Require(c.Shape.Rank >= 1 && c.Shape[-1] == n && c.Count == (long)m * n, $"gemm: c must hold [{m}, {n}]; {shapes}");
        }
        else
        {
            ShapeCheck.Require(b.Shape.Rank == 3 && a.Shape.Rank == 3 && c.Shape.Rank == 3, $"gemm: batched operands must all have rank 3; {shapes}");
            batch = a.Shape[0];
            (m, k) = transA ? (a.Shape[2], a.Shape[1]) : (a.Shape[1], a.Shape[2]);
            (int bk, int bn) = transB ? (b.Shape[2], b.Shape[1]) : (b.Shape[1], b.Shape[2]);
            n = bn;
            ShapeCheck.Require(b.Shape[0] == batch && c.Shape[0] == batch, $"gemm: batch sizes differ; {shapes}");
            ShapeCheck.Require(bk == k, $"gemm: inner dimensions differ ({k} vs {bk}); {shapes}");
            ShapeCheck.Require(c.Shape[1] == m && c.Shape[2] == n, $"gemm: c must be [{batch}, {m}, {n}]; {shapes}");
        }

        if (bias is not null)
        {
            ShapeCheck.Is(bias, nameof(bias), n);
        }

        long strideB = b.Shape.Rank == 3 ? (long)k * n : 0;
        var args = new GemmArgs(batch, m, n, k, transA, transB, alpha, beta, (long)m * k, strideB, (long)m * n);
        if (OnReference(nameof(Gemm), a, b, c, bias))
        {
            GemmReference(args, a, b, c, bias);
            return;
        }

        GemmCore(args, a, b, c, bias);
    }

    /// <summary>
    /// Copies <paramref name="src"/> into <paramref name="dst"/> of the same shape, converting between
    /// float storage types (float32 ↔ bfloat16): widening is exact, narrowing rounds to nearest even.
    /// </summary>
    public void Convert(Tensor src, Tensor dst)
    {
        Elementwise(src, nameof(src), dst, nameof(dst));
        if (OnReference(nameof(Convert), src, dst))
        {
            ConvertReference(src, dst);
            return;
        }

        ConvertCore(src, dst);
    }

    /// <summary>Bias gradient: <c>dBias[n] += Σ_rows dOut[row, n]</c> for dOut [.., N], dBias [N].</summary>
    public void BiasBackward(Tensor dOut, Tensor dBias)
    {
        Own(dOut, nameof(dOut));
        Own(dBias, nameof(dBias));
        ShapeCheck.Require(dOut.Shape.Rank >= 1 && dBias.Shape.Rank == 1 && dBias.Shape[0] == dOut.Shape[-1], $"bias backward: dBias {dBias.Shape} must be [{(dOut.Shape.Rank >= 1 ? dOut.Shape[-1] : 0)}] for dOut {dOut.Shape}");
        if (OnReference(nameof(BiasBackward), dOut, dBias))
        {
            BiasBackwardReference(dOut, dBias);
            return;
        }

        BiasBackwardCore(dOut, dBias);
    }

    /// <summary>Elementwise sum <c>y = a + b</c> (the residual stream); all shapes equal.</summary>
    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Elementwise(a, nameof(a), b, nameof(b), y, nameof(y));
        if (OnReference(nameof(Add), a, b, y))
        {
            AddReference(a, b, y);
            return;
        }

        AddCore(a, b, y);
    }

    /// <summary>Accumulate: <c>dst += src</c> (gradient of a residual connection); shapes equal.</summary>
    public void Accumulate(Tensor dst, Tensor src)
    {
        Elementwise(dst, nameof(dst), src, nameof(src));
        if (OnReference(nameof(Accumulate), dst, src))
        {
            AccumulateReference(dst, src);
            return;
        }

        AccumulateCore(dst, src);
    }

    /// <summary>Sets every element to zero (float or int tensors).</summary>
    public void Zero(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        Own(t, nameof(t), t.DType);
        if (OnReference(nameof(Zero), t))
        {
            ZeroReference(t);
            return;
        }

        ZeroCore(t);
    }

    /// <summary>Multiplies every element by <paramref name="factor"/> in place.</summary>
    public void Scale(Tensor x, float factor)
    {
        Own(x, nameof(x));
        if (OnReference(nameof(Scale), x))
        {
            ScaleReference(x, factor);
            return;
        }

        ScaleCore(x, factor);
    }

    /// <summary>GELU, tanh approximation (GPT-2): <c>y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))</c>.</summary>
    public void Gelu(Tensor x, Tensor y)
    {
        Elementwise(x, nameof(x), y, nameof(y));
        if (OnReference(nameof(Gelu), x, y))
        {
            GeluReference(x, y);
            return;
        }

        GeluCore(x, y);
    }

    /// <summary>GELU backward: <c>dx += gelu'(x) · dy</c>.</summary>
    public void GeluBackward(Tensor x, Tensor dy, Tensor dx)
    {
        Elementwise(x, nameof(x), dy, nameof(dy), dx, nameof(dx));
        if (OnReference(nameof(GeluBackward), x, dy, dx))
        {
            GeluBackwardReference(x, dy, dx);
            return;
        }

        GeluBackwardCore(x, dy, dx);
    }

    /// <summary>SiLU: <c>y = x · σ(x)</c>.</summary>
    public void Silu(Tensor x, Tensor y)
    {
        Elementwise(x, nameof(x), y, nameof(y));
        if (OnReference(nameof(Silu), x, y))
        {
            SiluReference(x, y);
            return;
        }

        SiluCore(x, y);
    }

    /// <summary>SiLU backward: <c>dx += σ(x)(1 + x(1 − σ(x))) · dy</c>.</summary>
    public void SiluBackward(Tensor x, Tensor dy, Tensor dx)
    {
        Elementwise(x, nameof(x), dy, nameof(dy), dx, nameof(dx));
        if (OnReference(nameof(SiluBackward), x, dy, dx))
        {
            SiluBackwardReference(x, dy, dx);
            return;
        }

        SiluBackwardCore(x, dy, dx);
    }

    /// <summary>SwiGLU (Llama MLP): <c>y = silu(gate) · up</c>; all shapes equal.</summary>
    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        Elementwise(gate, nameof(gate), up, nameof(up), y, nameof(y));
        if (OnReference(nameof(SwiGlu), gate, up, y))
        {
            SwiGluReference(gate, up, y);
            return;
        }

        SwiGluCore(gate, up, y);
    }

    /// <summary>SwiGLU backward: <c>dGate += silu'(gate)·up·dy</c>, <c>dUp += silu(gate)·dy</c>.</summary>
    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        Elementwise(gate, nameof(gate), up, nameof(up), dy, nameof(dy));
        Elementwise(gate, nameof(gate), dGate, nameof(dGate), dUp, nameof(dUp));
        if (OnReference(nameof(SwiGluBackward), gate, up, dy, dGate, dUp))
        {
            SwiGluBackwardReference(gate, up, dy, dGate, dUp);
            return;
        }

        SwiGluBackwardCore(gate, up, dy, dGate, dUp);
    }

    /// <summary>
    /// LayerNorm over the last dimension: x, y [.., C], weight and bias [C] (bias may be null),
    /// mean and rstd [rows] are saved for the backward.
    /// </summary>
    public void LayerNorm(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps = 1e-5f)
    {
        Norm(x, weight, bias, y, rstd, "layer norm");
        Own(mean, nameof(mean));
        ShapeCheck.Is(mean, nameof(mean), checked((int)x.Shape.Rows));
        if (OnReference(nameof(LayerNorm), x, weight, bias, y, mean, rstd))
        {
            LayerNormReference(x, weight, bias, y, mean, rstd, eps);
            return;
        }

        LayerNormCore(x, weight, bias, y, mean, rstd, eps);
    }

    /// <summary>LayerNorm backward: accumulates dx [.., C], dWeight [C] and dBias [C] (may be null).</summary>
    public void LayerNormBackward(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        Norm(x, weight, dBias, dy, rstd, "layer norm backward");
        Own(mean, nameof(mean));
        ShapeCheck.Same(mean, nameof(mean), rstd, nameof(rstd));
        Elementwise(x, nameof(x), dx, nameof(dx));
        Elementwise(weight, nameof(weight), dWeight, nameof(dWeight));
        if (OnReference(nameof(LayerNormBackward), x, weight, mean, rstd, dy, dx, dWeight, dBias))
        {
            LayerNormBackwardReference(x, weight, mean, rstd, dy, dx, dWeight, dBias);
            return;
        }

        LayerNormBackwardCore(x, weight, mean, rstd, dy, dx, dWeight, dBias);
    }

    /// <summary>
    /// Residual add fused with the LayerNorm after it (a pre-norm block's second half):
    /// <c>sum = a + b</c>, then <c>y = LayerNorm(sum)</c> as <see cref="LayerNorm"/>; a, b, sum,
    /// y [.., C]. The backward is <see cref="LayerNormBackward"/> of sum.
    /// </summary>
    public void AddLayerNorm(Tensor a, Tensor b, Tensor weight, Tensor? bias, Tensor sum, Tensor y, Tensor mean, Tensor rstd, float eps = 1e-5f)
    {
        Elementwise(a, nameof(a), b, nameof(b), sum, nameof(sum));
        Norm(sum, weight, bias, y, rstd, "add + layer norm");
        Own(mean, nameof(mean));
        ShapeCheck.Is(mean, nameof(mean), checked((int)sum.Shape.Rows));
        if (OnReference(nameof(AddLayerNorm), a, b, weight, bias, sum, y, mean, rstd))
        {
            AddLayerNormReference(a, b, weight, bias, sum, y, mean, rstd, eps);
            return;
        }

        AddLayerNormCore(a, b, weight, bias, sum, y, mean, rstd, eps);
    }

    /// <summary>Residual add fused with the RMSNorm after it: <c>sum = a + b</c>, <c>y = RmsNorm(sum)</c>; the backward is <see cref="RmsNormBackward"/> of sum.</summary>
    public void AddRmsNorm(Tensor a, Tensor b, Tensor weight, Tensor sum, Tensor y, Tensor rstd, float eps = 1e-6f)
    {
        Elementwise(a, nameof(a), b, nameof(b), sum, nameof(sum));
        Norm(sum, weight, null, y, rstd, "add + rms norm");
        if (OnReference(nameof(AddRmsNorm), a, b, weight, sum, y, rstd))
        {
            AddRmsNormReference(a, b, weight, sum, y, rstd, eps);
            return;
        }

        AddRmsNormCore(a, b, weight, sum, y, rstd, eps);
    }

    /// <summary>RMSNorm over the last dimension: <c>y = x · rstd · weight</c>, rstd [rows] saved.</summary>
    public void RmsNorm(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps = 1e-6f)
    {
        Norm(x, weight, null, y, rstd, "rms norm");
        if (OnReference(nameof(RmsNorm), x, weight, y, rstd))
        {
            RmsNormReference(x, weight, y, rstd, eps);
            return;
        }

        RmsNormCore(x, weight, y, rstd, eps);
    }

    /// <summary>RMSNorm backward: accumulates dx [.., C] and dWeight [C].</summary>
    public void RmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight)
    {
        Norm(x, weight, null, dy, rstd, "rms norm backward");
        Elementwise(x, nameof(x), dx, nameof(dx));
        Elementwise(weight, nameof(weight), dWeight, nameof(dWeight));
        if (OnReference(nameof(RmsNormBackward), x, weight, rstd, dy, dx, dWeight))
        {
            RmsNormBackwardReference(x, weight, rstd, dy, dx, dWeight);
            return;
        }

        RmsNormBackwardCore(x, weight, rstd, dy, dx, dWeight);
    }

    /// <summary>
    /// Rotary position embedding, Hugging Face layout (rotate-half: element i pairs with i + D/2,
    /// both rotated by angle positions[b, t]·invFreq[i]): x, y [B, T, H, D] with D even, positions
    /// [B, T] (int32), invFreq [D/2] (θ^(−2i/D) for plain RoPE; scaled variants such as Llama 3's
    /// are computed by the caller).
    /// </summary>
    public void Rope(Tensor x, Tensor positions, Tensor invFreq, Tensor y)
    {
        RopeArgs(x, positions, invFreq, y, nameof(y));
        if (OnReference(nameof(Rope), x, positions, invFreq, y))
        {
            RopeReference(x, positions, invFreq, y);
            return;
        }

        RopeCore(x, positions, invFreq, y);
    }

    /// <summary>RoPE backward: <c>dx += Rᵀ dy</c>, the rotation by the opposite angle.</summary>
    public void RopeBackward(Tensor dy, Tensor positions, Tensor invFreq, Tensor dx)
    {
        RopeArgs(dy, positions, invFreq, dx, nameof(dx));
        if (OnReference(nameof(RopeBackward), dy, positions, invFreq, dx))
        {
            RopeBackwardReference(dy, positions, invFreq, dx);
            return;
        }

        RopeBackwardCore(dy, positions, invFreq, dx);
    }

    /// <summary>Softmax over the last dimension: x, y [.., C].</summary>
    public void Softmax(Tensor x, Tensor y)
    {
        Elementwise(x, nameof(x), y, nameof(y));
        ShapeCheck.Require(x.Shape.Rank >= 1 && x.Shape[-1] > 0, $"softmax: x {x.Shape} needs a non-empty last dimension");
        if (OnReference(nameof(Softmax), x, y))
        {
            SoftmaxReference(x, y);
            return;
        }

        SoftmaxCore(x, y);
    }

    /// <summary>Softmax backward from the output: <c>dx += y ⊙ (dy − Σ dy ⊙ y)</c>.</summary>
    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        Elementwise(y, nameof(y), dy, nameof(dy), dx, nameof(dx));
        ShapeCheck.Require(y.Shape.Rank >= 1 && y.Shape[-1] > 0, $"softmax backward: y {y.Shape} needs a non-empty last dimension");
        if (OnReference(nameof(SoftmaxBackward), y, dy, dx))
        {
            SoftmaxBackwardReference(y, dy, dx);
            return;
        }

        SoftmaxBackwardCore(y, dy, dx);
    }

    /// <summary>
    /// Plain causal self-attention with grouped-query heads, scale 1/√D: q [B, T, Hq, D],
    /// k and v [B, T, Hkv, D] (Hq a multiple of Hkv), output [B, T, Hq, D]; probs [B, Hq, T, T]
    /// receives the attention weights for the backward (upper triangle zero).
    /// </summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor output, Tensor probs)
    {
        AttentionArgs(q, k, v, probs);
        Own(output, nameof(output));
        ShapeCheck.Same(q, nameof(q), output, nameof(output));
        if (OnReference(nameof(Attention), q, k, v, output, probs))
        {
            AttentionReference(q, k, v, output, probs);
            return;
        }

        AttentionCore(q, k, v, output, probs);
    }

    /// <summary>Attention backward: accumulates dq, dk, dv (shapes of q, k, v) from dOutput [B, T, Hq, D].</summary>
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor probs, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv)
    {
        AttentionArgs(q, k, v, probs);
        Elementwise(q, nameof(q), dOutput, nameof(dOutput), dq, nameof(dq));
        Elementwise(k, nameof(k), dk, nameof(dk));
        Elementwise(v, nameof(v), dv, nameof(dv));
        if (OnReference(nameof(AttentionBackward), q, k, v, probs, dOutput, dq, dk, dv))
        {
            AttentionBackwardReference(q, k, v, probs, dOutput, dq, dk, dv);
            return;
        }

        AttentionBackwardCore(q, k, v, probs, dOutput, dq, dk, dv);
    }

    /// <summary>
    /// Fused causal self-attention (flash style: keys in tiles with an online softmax, no T×T
    /// matrix): q [B, T, Hq, D], k and v [B, T, Hkv, D] (Hq a multiple of Hkv), scale 1/√D,
    /// output [B, T, Hq, D]; lse [B, Hq, T] receives each query row's log-sum-exp for the
    /// backward. lengths [B] (int32, 0..T; null = all T) marks right padding: query rows at or past
    /// a sequence's length get output 0 and lse 0 (causality already hides padded keys from real queries).
    /// <paramref name="window"/> &gt; 0 is sliding-window attention (Mistral, Qwen2's upper layers):
    /// query i sees keys i − window + 1 .. i, exactly <paramref name="window"/> of them, as
    /// transformers' sliding-window mask defines it; 0 sees every earlier key.
    /// </summary>
    public void FlashAttention(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, int window = 0)
    {
        FlashArgs(q, k, v, lengths, lse, window);
        Own(output, nameof(output));
        ShapeCheck.Same(q, nameof(q), output, nameof(output));
        if (OnReference(nameof(FlashAttention), q, k, v, lengths, output, lse))
        {
            FlashAttentionReference(q, k, v, lengths, output, lse, window);
            return;
        }

        FlashAttentionCore(q, k, v, lengths, output, lse, window);
    }

    /// <summary>
    /// Backward of <see cref="FlashAttention"/> from its output and lse (probabilities are
    /// recomputed, never stored): accumulates dq, dk, dv (shapes of q, k, v) for dOutput [B, T, Hq, D],
    /// with the forward's <paramref name="window"/>.
    /// </summary>
    public void FlashAttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor output, Tensor lse, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, int window = 0)
    {
        FlashArgs(q, k, v, lengths, lse, window);
        Elementwise(q, nameof(q), output, nameof(output), dOutput, nameof(dOutput));
        Elementwise(q, nameof(q), dq, nameof(dq));
        Elementwise(k, nameof(k), dk, nameof(dk));
        Elementwise(v, nameof(v), dv, nameof(dv));
        if (OnReference(nameof(FlashAttentionBackward), q, k, v, lengths, output, lse, dOutput, dq, dk, dv))
        {
            FlashAttentionBackwardReference(q, k, v, lengths, output, lse, dOutput, dq, dk, dv, window);
            return;
        }

        FlashAttentionBackwardCore(q, k, v, lengths, output, lse, dOutput, dq, dk, dv, window);
    }

    /// <summary>
    /// Decode-step attention over a KV cache, for generation: appends this step's key and value
    /// (kNew, vNew [B, Hkv, D]) to the caches (kCache, vCache [B, S, Hkv, D]) at position
    /// lengths[b] (int32 [B], each below S), then attends q [B, Hq, D] over cache positions
    /// 0..lengths[b] inclusive — with <paramref name="window"/> &gt; 0 only the last
    /// <paramref name="window"/> of them, as <see cref="FlashAttention"/> — scale 1/√D, into output
    /// [B, Hq, D]. Sequences of a batch may have different lengths; the caller advances lengths after the step.
    /// </summary>
    public void AttentionDecode(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor lengths, Tensor output, int window = 0)
    {
        Own(q, nameof(q));
        Own(kNew, nameof(kNew));
        Own(vNew, nameof(vNew));
        Own(kCache, nameof(kCache));
        Own(vCache, nameof(vCache));
        Own(lengths, nameof(lengths), DType.Int32);
        Own(output, nameof(output));
        ShapeCheck.Rank(q, 3, nameof(q), "[B, Hq, D]");
        ShapeCheck.Rank(kCache, 4, nameof(kCache), "[B, S, Hkv, D]");
        ShapeCheck.Same(q, nameof(q), output, nameof(output));
        ShapeCheck.Same(kCache, nameof(kCache), vCache, nameof(vCache));
        int b = q.Shape[0], hq = q.Shape[1], d = q.Shape[2], s = kCache.Shape[1], hkv = kCache.Shape[2];
        ShapeCheck.Require(
            kCache.Shape[0] == b && kCache.Shape[3] == d && hkv > 0 && hq % hkv == 0,
            $"attention decode: q {q.Shape} and kCache {kCache.Shape} must agree on B and D, with Hq a multiple of Hkv");
        ShapeCheck.Is(kNew, nameof(kNew), b, hkv, d);
        ShapeCheck.Is(vNew, nameof(vNew), b, hkv, d);
        ShapeCheck.Is(lengths, nameof(lengths), b);
        CheckIndices(lengths, 0, s, nameof(lengths));
        ShapeCheck.Require(window >= 0, $"attention decode: window must be >= 0 (0 = every earlier key), got {window}");
        if (OnReference(nameof(AttentionDecode), q, kNew, vNew, kCache, vCache, lengths, output))
        {
            AttentionDecodeReference(q, kNew, vNew, kCache, vCache, lengths, output, window);
            return;
        }

        AttentionDecodeCore(q, kNew, vNew, kCache, vCache, lengths, output, window);
    }

    /// <summary>
    /// Attention of new rows over a KV cache — chunked prefill, decode and continuous batching in one
    /// op: row r (q [N, Hq, D], kNew and vNew [N, Hkv, D]) belongs to cache slot slots[r] (int32 [N],
    /// −1 = a padding row) at position positions[r] (int32 [N], below S). Every row's key and value
    /// are first written to kCache and vCache [Bc, S, Hkv, D] at (slot, position); then row r attends
    /// over its slot's positions 0..positions[r] inclusive — with <paramref name="window"/> &gt; 0 only
    /// the last <paramref name="window"/> of them, as <see cref="FlashAttention"/> — scale 1/√D, into
    /// output [N, Hq, D]. So rows of one slot at consecutive positions attend causally within the
    /// chunk and over what earlier calls cached; positions before a row that no call has written are
    /// the caller's to have filled, and no two rows may share a (slot, position) (which write would
    /// win is not defined). A padding row's output is 0.
    /// </summary>
    public void AttentionCached(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor slots, Tensor positions, Tensor output, int window = 0)
    {
        Own(q, nameof(q));
        Own(kNew, nameof(kNew));
        Own(vNew, nameof(vNew));
        Own(kCache, nameof(kCache));
        Own(vCache, nameof(vCache));
        Own(slots, nameof(slots), DType.Int32);
        Own(positions, nameof(positions), DType.Int32);
        Own(output, nameof(output));
        ShapeCheck.Rank(q, 3, nameof(q), "[N, Hq, D]");
        ShapeCheck.Rank(kCache, 4, nameof(kCache), "[Bc, S, Hkv, D]");
        ShapeCheck.Same(q, nameof(q), output, nameof(output));
        ShapeCheck.Same(kCache, nameof(kCache), vCache, nameof(vCache));
        int n = q.Shape[0], hq = q.Shape[1], d = q.Shape[2], bc = kCache.Shape[0], s = kCache.Shape[1], hkv = kCache.Shape[2];
        ShapeCheck.Require(kCache.Shape[3] == d && hkv > 0 && hq % hkv == 0, $"cached attention: q {q.Shape} and kCache {kCache.Shape} must agree on D, with Hq a multiple of Hkv");
        ShapeCheck.Is(kNew, nameof(kNew), n, hkv, d);
        ShapeCheck.Is(vNew, nameof(vNew), n, hkv, d);
        ShapeCheck.Is(slots, nameof(slots), n);
        ShapeCheck.Is(positions, nameof(positions), n);
        ShapeCheck.Require(window >= 0, $"cached attention: window must be >= 0 (0 = every earlier key), got {window}");
        CheckIndices(slots, -1, bc, nameof(slots));
        CheckIndices(positions, 0, s, nameof(positions));

        if (OnReference(nameof(AttentionCached), q, kNew, vNew, kCache, vCache, slots, positions, output))
        {
            AttentionCachedReference(q, kNew, vNew, kCache, vCache, slots, positions, output, window);
            return;
        }

        AttentionCachedCore(q, kNew, vNew, kCache, vCache, slots, positions, output, window);
    }

    /// <summary>
    /// Column copy between row-major matrices with the same number of rows:
    /// <c>dst[r, dstColumn + j] = src[r, srcColumn + j]</c> for j &lt; width. Splits a fused QKV
    /// projection into heads, and its backward packs the gradients back.
    /// </summary>
    public void CopyColumns(Tensor src, int srcColumn, Tensor dst, int dstColumn, int width)
    {
        Own(src, nameof(src));
        Own(dst, nameof(dst));
        ShapeCheck.Require(
            src.Shape.Rank >= 1 && dst.Shape.Rank >= 1 && src.Shape.Rows == dst.Shape.Rows,
            $"copy columns: src {src.Shape} and dst {dst.Shape} must have the same number of rows");
        ShapeCheck.Require(
            width >= 0 && srcColumn >= 0 && dstColumn >= 0 && srcColumn + width <= src.Shape[-1] && dstColumn + width <= dst.Shape[-1],
            $"copy columns: columns [{srcColumn}, {srcColumn + width}) of src {src.Shape} into [{dstColumn}, {dstColumn + width}) of dst {dst.Shape} are out of range");
        if (OnReference(nameof(CopyColumns), src, dst))
        {
            CopyColumnsReference(src, srcColumn, dst, dstColumn, width);
            return;
        }

        CopyColumnsCore(src, srcColumn, dst, dstColumn, width);
    }

    /// <summary>Embedding lookup: output[i, :] = table[ids[i], :] for ids [..] (int32), table [V, C], output [.., C].</summary>
    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        EmbeddingArgs(ids, table, output, nameof(output));
        if (OnReference(nameof(Embedding), ids, table, output))
        {
            EmbeddingReference(ids, table, output);
            return;
        }

        EmbeddingCore(ids, table, output);
    }

    /// <summary>Embedding backward: <c>dTable[ids[i], :] += dOutput[i, :]</c>.</summary>
    public void EmbeddingBackward(Tensor ids, Tensor dOutput, Tensor dTable)
    {
        EmbeddingArgs(ids, dTable, dOutput, nameof(dOutput));
        if (OnReference(nameof(EmbeddingBackward), ids, dOutput, dTable))
        {
            EmbeddingBackwardReference(ids, dOutput, dTable);
            return;
        }

        EmbeddingBackwardCore(ids, dOutput, dTable);
    }

    /// <summary>
    /// Token cross-entropy: <c>losses[r] = logsumexp(logits[r, :]) − logits[r, targets[r]]</c>
    /// for logits [.., V], targets [..] (int32; negative = padding, loss 0), losses [..].
    /// </summary>
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses)
    {
        CrossEntropyArgs(logits, targets, losses, nameof(losses));
        if (OnReference(nameof(CrossEntropy), logits, targets, losses))
        {
            CrossEntropyReference(logits, targets, losses);
            return;
        }

        CrossEntropyCore(logits, targets, losses);
    }

    /// <summary>Cross-entropy backward: <c>dLogits[r, :] += dLosses[r]·(softmax(logits[r, :]) − onehot(targets[r]))</c>.</summary>
    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor dLosses, Tensor dLogits)
    {
        CrossEntropyArgs(logits, targets, dLosses, nameof(dLosses));
        Elementwise(logits, nameof(logits), dLogits, nameof(dLogits));
        if (OnReference(nameof(CrossEntropyBackward), logits, targets, dLosses, dLogits))
        {
            CrossEntropyBackwardReference(logits, targets, dLosses, dLogits);
            return;
        }

        CrossEntropyBackwardCore(logits, targets, dLosses, dLogits);
    }

    /// <summary>
    /// One AdamW step (1-based <paramref name="step"/> for the bias correction) on a parameter
    /// tensor, its gradient and its two moment buffers, all of one shape.
    /// </summary>
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWSettings settings, int step)
    {
        Elementwise(param, nameof(param), grad, nameof(grad), m, nameof(m));
        Elementwise(param, nameof(param), v, nameof(v));
        ShapeCheck.Require(step >= 1, $"adamw: step must be >= 1, got {step}");
        ShapeCheck.Require(settings.LearningRate >= 0 && settings.Beta1 is >= 0 and < 1 && settings.Beta2 is >= 0 and < 1 && settings.Epsilon > 0, $"adamw: invalid settings {settings}");
        if (OnReference(nameof(AdamW), param, grad, m, v))
        {
            AdamWReference(param, grad, m, v, settings, step);
            return;
        }

        AdamWCore(param, grad, m, v, settings, step);
    }

    /// <summary>Sum of squares of all elements, accumulated in double (the gradient norm's square).</summary>
    public double SumOfSquares(Tensor x)
    {
        Own(x, nameof(x));
        return OnReference(nameof(SumOfSquares), x) ? SumOfSquaresReference(x) : SumOfSquaresCore(x);
    }

    /// <summary>
    /// Clips the global L2 norm of <paramref name="grads"/> (usually the one contiguous gradient
    /// buffer) to <paramref name="maxNorm"/> as <c>torch.nn.utils.clip_grad_norm_</c> does, and
    /// returns the norm before clipping.
    /// </summary>
    public double ClipGradNorm(Tensor grads, double maxNorm)
    {
        double norm = Math.Sqrt(SumOfSquares(grads));
        if (norm > maxNorm)
        {
            Scale(grads, (float)(maxNorm / (norm + 1e-6)));
        }

        return norm;
    }

    // The reference bodies (RA3.Kernels.Reference): a backend overrides the ops it accelerates.
    private protected virtual void GemmCore(in GemmArgs args, Tensor a, Tensor b, Tensor c, Tensor? bias) => GemmReference(in args, a, b, c, bias);

    private void GemmReference(in GemmArgs args, Tensor a, Tensor b, Tensor c, Tensor? bias)
    {
        using var h = Host(nameof(Gemm));
        ReferenceKernels.Gemm(args, h.In(a), h.In(b), h.Out(c), h.In(bias));
    }

    private protected virtual void ConvertCore(Tensor src, Tensor dst) => ConvertReference(src, dst);

    private void ConvertReference(Tensor src, Tensor dst)
    {
        using var h = Host(nameof(Convert));
        h.In(src).CopyTo(h.Out(dst));
    }

    private protected virtual void BiasBackwardCore(Tensor dOut, Tensor dBias) => BiasBackwardReference(dOut, dBias);

    private void BiasBackwardReference(Tensor dOut, Tensor dBias)
    {
        using var h = Host(nameof(BiasBackward));
        ReferenceKernels.BiasBackward(h.In(dOut), h.Out(dBias));
    }

    private protected virtual void AddCore(Tensor a, Tensor b, Tensor y) => AddReference(a, b, y);

    private void AddReference(Tensor a, Tensor b, Tensor y)
    {
        using var h = Host(nameof(Add));
        ReferenceKernels.Add(h.In(a), h.In(b), h.Out(y));
    }

    private protected virtual void AccumulateCore(Tensor dst, Tensor src) => AccumulateReference(dst, src);

    private void AccumulateReference(Tensor dst, Tensor src)
    {
        using var h = Host(nameof(Accumulate));
        ReferenceKernels.Accumulate(h.Out(dst), h.In(src));
    }

    private protected virtual void ZeroCore(Tensor t) => ZeroReference(t);

    private void ZeroReference(Tensor t)
    {
        using var h = Host(nameof(Zero));
        if (t.DType == DType.Int32)
        {
            h.OutInts(t).Clear();
        }
        else
        {
            h.Out(t).Clear();
        }
    }

    private protected virtual void ScaleCore(Tensor x, float factor) => ScaleReference(x, factor);

    private void ScaleReference(Tensor x, float factor)
    {
        using var h = Host(nameof(Scale));
        ReferenceKernels.Scale(h.Out(x), factor);
    }

    private protected virtual void GeluCore(Tensor x, Tensor y) => GeluReference(x, y);

    private void GeluReference(Tensor x, Tensor y)
    {
        using var h = Host(nameof(Gelu));
        ReferenceKernels.Gelu(h.In(x), h.Out(y));
    }

    private protected virtual void GeluBackwardCore(Tensor x, Tensor dy, Tensor dx) => GeluBackwardReference(x, dy, dx);

    private void GeluBackwardReference(Tensor x, Tensor dy, Tensor dx)
    {
        using var h = Host(nameof(GeluBackward));
        ReferenceKernels.GeluBackward(h.In(x), h.In(dy), h.Out(dx));
    }

    private protected virtual void SiluCore(Tensor x, Tensor y) => SiluReference(x, y);

    private void SiluReference(Tensor x, Tensor y)
    {
        using var h = Host(nameof(Silu));
        ReferenceKernels.Silu(h.In(x), h.Out(y));
    }

    private protected virtual void SiluBackwardCore(Tensor x, Tensor dy, Tensor dx) => SiluBackwardReference(x, dy, dx);

    private void SiluBackwardReference(Tensor x, Tensor dy, Tensor dx)
    {
        using var h = Host(nameof(SiluBackward));
        ReferenceKernels.SiluBackward(h.In(x), h.In(dy), h.Out(dx));
    }

    private protected virtual void SwiGluCore(Tensor gate, Tensor up, Tensor y) => SwiGluReference(gate, up, y);

    private void SwiGluReference(Tensor gate, Tensor up, Tensor y)
    {
        using var h = Host(nameof(SwiGlu));
        ReferenceKernels.SwiGlu(h.In(gate), h.In(up), h.Out(y));
    }

    private protected virtual void SwiGluBackwardCore(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp) => SwiGluBackwardReference(gate, up, dy, dGate, dUp);

    private void SwiGluBackwardReference(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        using var h = Host(nameof(SwiGluBackward));
        ReferenceKernels.SwiGluBackward(h.In(gate), h.In(up), h.In(dy), h.Out(dGate), h.Out(dUp));
    }

    private protected virtual void LayerNormCore(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps) => LayerNormReference(x, weight, bias, y, mean, rstd, eps);

    private void LayerNormReference(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        using var h = Host(nameof(LayerNorm));
        ReferenceKernels.LayerNorm(h.In(x), h.In(weight), h.In(bias), h.Out(y), h.Out(mean), h.Out(rstd), eps);
    }

    private protected virtual void LayerNormBackwardCore(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias) => LayerNormBackwardReference(x, weight, mean, rstd, dy, dx, dWeight, dBias);

    private void LayerNormBackwardReference(Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        using var h = Host(nameof(LayerNormBackward));
        ReferenceKernels.LayerNormBackward(h.In(x), h.In(weight), h.In(mean), h.In(rstd), h.In(dy), h.Out(dx), h.Out(dWeight), dBias is null ? [] : h.Out(dBias));
    }

    private protected virtual void AddLayerNormCore(Tensor a, Tensor b, Tensor weight, Tensor? bias, Tensor sum, Tensor y, Tensor mean, Tensor rstd, float eps) => AddLayerNormReference(a, b, weight, bias, sum, y, mean, rstd, eps);

    private void AddLayerNormReference(Tensor a, Tensor b, Tensor weight, Tensor? bias, Tensor sum, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        using var h = Host(nameof(AddLayerNorm));
        ReferenceKernels.Add(h.In(a), h.In(b), h.Out(sum));
        ReferenceKernels.LayerNorm(h.In(sum), h.In(weight), h.In(bias), h.Out(y), h.Out(mean), h.Out(rstd), eps);
    }

    private protected virtual void AddRmsNormCore(Tensor a, Tensor b, Tensor weight, Tensor sum, Tensor y, Tensor rstd, float eps) => AddRmsNormReference(a, b, weight, sum, y, rstd, eps);

    private void AddRmsNormReference(Tensor a, Tensor b, Tensor weight, Tensor sum, Tensor y, Tensor rstd, float eps)
    {
        using var h = Host(nameof(AddRmsNorm));
        ReferenceKernels.Add(h.In(a), h.In(b), h.Out(sum));
        ReferenceKernels.RmsNorm(h.In(sum), h.In(weight), h.Out(y), h.Out(rstd), eps);
    }

    private protected virtual void RmsNormCore(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps) => RmsNormReference(x, weight, y, rstd, eps);

    private void RmsNormReference(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps)
    {
        using var h = Host(nameof(RmsNorm));
        ReferenceKernels.RmsNorm(h.In(x), h.In(weight), h.Out(y), h.Out(rstd), eps);
    }

    private protected virtual void RmsNormBackwardCore(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight) => RmsNormBackwardReference(x, weight, rstd, dy, dx, dWeight);

    private void RmsNormBackwardReference(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dWeight)
    {
        using var h = Host(nameof(RmsNormBackward));
        ReferenceKernels.RmsNormBackward(h.In(x), h.In(weight), h.In(rstd), h.In(dy), h.Out(dx), h.Out(dWeight));
    }

    private protected virtual void RopeCore(Tensor x, Tensor positions, Tensor invFreq, Tensor y) => RopeReference(x, positions, invFreq, y);

    private void RopeReference(Tensor x, Tensor positions, Tensor invFreq, Tensor y)
    {
        using var h = Host(nameof(Rope));
        ReferenceKernels.Rope(h.In(x), h.Ints(positions), h.In(invFreq), h.Out(y), x.Shape[2], inverse: false);
    }

    private protected virtual void RopeBackwardCore(Tensor dy, Tensor positions, Tensor invFreq, Tensor dx) => RopeBackwardReference(dy, positions, invFreq, dx);

    private void RopeBackwardReference(Tensor dy, Tensor positions, Tensor invFreq, Tensor dx)
    {
        using var h = Host(nameof(RopeBackward));
        ReferenceKernels.Rope(h.In(dy), h.Ints(positions), h.In(invFreq), h.Out(dx), dy.Shape[2], inverse: true);
    }

    private protected virtual void SoftmaxCore(Tensor x, Tensor y) => SoftmaxReference(x, y);

    private void SoftmaxReference(Tensor x, Tensor y)
    {
        using var h = Host(nameof(Softmax));
        ReferenceKernels.Softmax(h.In(x), h.Out(y), x.Shape[-1]);
    }

    private protected virtual void SoftmaxBackwardCore(Tensor y, Tensor dy, Tensor dx) => SoftmaxBackwardReference(y, dy, dx);

    private void SoftmaxBackwardReference(Tensor y, Tensor dy, Tensor dx)
    {
        using var h = Host(nameof(SoftmaxBackward));
        ReferenceKernels.SoftmaxBackward(h.In(y), h.In(dy), h.Out(dx), y.Shape[-1]);
    }

    private protected virtual void AttentionCore(Tensor q, Tensor k, Tensor v, Tensor output, Tensor probs) => AttentionReference(q, k, v, output, probs);

    private void AttentionReference(Tensor q, Tensor k, Tensor v, Tensor output, Tensor probs)
    {
        using var h = Host(nameof(Attention));
        ReferenceKernels.Attention(AttentionShape(q, k), h.In(q), h.In(k), h.In(v), h.Out(output), h.Out(probs));
    }

    private protected virtual void AttentionBackwardCore(Tensor q, Tensor k, Tensor v, Tensor probs, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv) => AttentionBackwardReference(q, k, v, probs, dOutput, dq, dk, dv);

    private void AttentionBackwardReference(Tensor q, Tensor k, Tensor v, Tensor probs, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv)
    {
        using var h = Host(nameof(AttentionBackward));
        ReferenceKernels.AttentionBackward(AttentionShape(q, k), h.In(q), h.In(k), h.In(v), h.In(probs), h.In(dOutput), h.Out(dq), h.Out(dk), h.Out(dv));
    }

    private protected virtual void AttentionDecodeCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor lengths, Tensor output, int window) => AttentionDecodeReference(q, kNew, vNew, kCache, vCache, lengths, output, window);

    private void AttentionDecodeReference(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor lengths, Tensor output, int window)
    {
        using var h = Host(nameof(AttentionDecode));
        ReferenceKernels.AttentionDecode(q.Shape[1], kCache.Shape[2], q.Shape[2], h.In(q), h.In(kNew), h.In(vNew), h.Out(kCache), h.Out(vCache), h.Ints(lengths), h.Out(output), window);
    }

    private protected virtual void AttentionCachedCore(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor slots, Tensor positions, Tensor output, int window) => AttentionCachedReference(q, kNew, vNew, kCache, vCache, slots, positions, output, window);

    private void AttentionCachedReference(Tensor q, Tensor kNew, Tensor vNew, Tensor kCache, Tensor vCache, Tensor slots, Tensor positions, Tensor output, int window)
    {
        using var h = Host(nameof(AttentionCached));
        ReferenceKernels.AttentionCached(q.Shape[1], kCache.Shape[2], q.Shape[2], kCache.Shape[1], h.In(q), h.In(kNew), h.In(vNew), h.Out(kCache), h.Out(vCache), h.Ints(slots), h.Ints(positions), h.Out(output), window);
    }

    private protected virtual void CopyColumnsCore(Tensor src, int srcColumn, Tensor dst, int dstColumn, int width) => CopyColumnsReference(src, srcColumn, dst, dstColumn, width);

    private void CopyColumnsReference(Tensor src, int srcColumn, Tensor dst, int dstColumn, int width)
    {
        using var h = Host(nameof(CopyColumns));
        ReferenceKernels.CopyColumns(h.In(src), src.Shape[-1], srcColumn, h.Out(dst), dst.Shape[-1], dstColumn, width);
    }

    private protected virtual void EmbeddingCore(Tensor ids, Tensor table, Tensor output) => EmbeddingReference(ids, table, output);

    private void EmbeddingReference(Tensor ids, Tensor table, Tensor output)
    {
        using var h = Host(nameof(Embedding));
        ReferenceKernels.Embedding(h.Ints(ids), h.In(table), table.Shape[1], h.Out(output));
    }

    private protected virtual void EmbeddingBackwardCore(Tensor ids, Tensor dOutput, Tensor dTable) => EmbeddingBackwardReference(ids, dOutput, dTable);

    private void EmbeddingBackwardReference(Tensor ids, Tensor dOutput, Tensor dTable)
    {
        using var h = Host(nameof(EmbeddingBackward));
        ReferenceKernels.EmbeddingBackward(h.Ints(ids), h.In(dOutput), dTable.Shape[1], h.Out(dTable));
    }

    private protected virtual void CrossEntropyCore(Tensor logits, Tensor targets, Tensor losses) => CrossEntropyReference(logits, targets, losses);

    private void CrossEntropyReference(Tensor logits, Tensor targets, Tensor losses)
    {
        using var h = Host(nameof(CrossEntropy));
        ReferenceKernels.CrossEntropy(h.In(logits), h.Ints(targets), h.Out(losses), logits.Shape[-1]);
    }

    private protected virtual void CrossEntropyBackwardCore(Tensor logits, Tensor targets, Tensor dLosses, Tensor dLogits) => CrossEntropyBackwardReference(logits, targets, dLosses, dLogits);

    private void CrossEntropyBackwardReference(Tensor logits, Tensor targets, Tensor dLosses, Tensor dLogits)
    {
        using var h = Host(nameof(CrossEntropyBackward));
        ReferenceKernels.CrossEntropyBackward(h.In(logits), h.Ints(targets), h.In(dLosses), h.Out(dLogits), logits.Shape[-1]);
    }

    private protected virtual void AdamWCore(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWSettings settings, int step) => AdamWReference(param, grad, m, v, settings, step);

    private void AdamWReference(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWSettings settings, int step)
    {
        using var h = Host(nameof(AdamW));
        ReferenceKernels.AdamW(h.Out(param), h.In(grad), h.Out(m), h.Out(v), settings, step);
    }

    private protected virtual double SumOfSquaresCore(Tensor x) => SumOfSquaresReference(x);

    private double SumOfSquaresReference(Tensor x)
    {
        using var h = Host(nameof(SumOfSquares));
        return ReferenceKernels.SumOfSquares(h.In(x));
    }

    private static ReferenceKernels.AttentionShape AttentionShape(Tensor q, Tensor k) => new(q.Shape[0], q.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3]);

    private void Elementwise(Tensor a, string nameA, Tensor b, string nameB)
    {
        Own(a, nameA);
        Own(b, nameB);
        ShapeCheck.Same(a, nameA, b, nameB);
    }

    private void Elementwise(Tensor a, string nameA, Tensor b, string nameB, Tensor c, string nameC)
    {
        Elementwise(a, nameA, b, nameB);
        Elementwise(a, nameA, c, nameC);
    }

    private void Norm(Tensor x, Tensor weight, Tensor? bias, Tensor y, Tensor rstd, string op)
    {
        Elementwise(x, nameof(x), y, "y");
        Own(weight, nameof(weight));
        Own(rstd, nameof(rstd));
        ShapeCheck.Require(x.Shape.Rank >= 1 && x.Shape[-1] > 0, $"{op}: x {x.Shape} needs a non-empty last dimension");
        ShapeCheck.Is(weight, nameof(weight), x.Shape[-1]);
        if (bias is not null)
        {
            Own(bias, nameof(bias));
            ShapeCheck.Is(bias, nameof(bias), x.Shape[-1]);
        }

        ShapeCheck.Is(rstd, nameof(rstd), checked((int)x.Shape.Rows));
    }

    private void RopeArgs(Tensor x, Tensor positions, Tensor invFreq, Tensor y, string nameY)
    {
        Elementwise(x, nameof(x), y, nameY);
        Own(positions, nameof(positions), DType.Int32);
        Own(invFreq, nameof(invFreq));
        ShapeCheck.Rank(x, 4, nameof(x), "[B, T, H, D]");
        ShapeCheck.Require(x.Shape[3] % 2 == 0, $"rope: head dimension of x {x.Shape} must be even");
        ShapeCheck.Is(positions, nameof(positions), x.Shape[0], x.Shape[1]);
        ShapeCheck.Is(invFreq, nameof(invFreq), x.Shape[3] / 2);
    }

    private void AttentionArgs(Tensor q, Tensor k, Tensor v, Tensor probs)
    {
        var (b, t, hq) = AttentionShapes(q, k, v, "attention");
        Own(probs, nameof(probs));
        ShapeCheck.Is(probs, nameof(probs), b, hq, t, t);
    }

    private void FlashArgs(Tensor q, Tensor k, Tensor v, Tensor? lengths, Tensor lse, int window)
    {
        var (b, t, hq) = AttentionShapes(q, k, v, "flash attention");
        ShapeCheck.Require(window >= 0, $"flash attention: window must be >= 0 (0 = every earlier key), got {window}");
        Own(lse, nameof(lse));
        ShapeCheck.Is(lse, nameof(lse), b, hq, t);
        if (lengths is not null)
        {
            Own(lengths, nameof(lengths), DType.Int32);
            ShapeCheck.Is(lengths, nameof(lengths), b);
            CheckIndices(lengths, 0, t + 1, nameof(lengths));
        }
    }

    /// <summary>Checks q [B, T, Hq, D] against k, v [B, T, Hkv, D] (Hq a multiple of Hkv); returns (B, T, Hq).</summary>
    private (int B, int T, int Hq) AttentionShapes(Tensor q, Tensor k, Tensor v, string op)
    {
        Own(q, nameof(q));
        Own(k, nameof(k));
        Own(v, nameof(v));
        ShapeCheck.Rank(q, 4, nameof(q), "[B, T, Hq, D]");
        ShapeCheck.Rank(k, 4, nameof(k), "[B, T, Hkv, D]");
        ShapeCheck.Same(k, nameof(k), v, nameof(v));
        int b = q.Shape[0], t = q.Shape[1], hq = q.Shape[2], d = q.Shape[3], hkv = k.Shape[2];
        ShapeCheck.Require(
            k.Shape[0] == b && k.Shape[1] == t && k.Shape[3] == d && hkv > 0 && hq % hkv == 0,
            $"{op}: q {q.Shape} and k {k.Shape} must agree on B, T, D, with Hq a multiple of Hkv");
        return (b, t, hq);
    }

    private void EmbeddingArgs(Tensor ids, Tensor table, Tensor output, string nameOutput)
    {
        Own(ids, nameof(ids), DType.Int32);
        Own(table, nameof(table));
        Own(output, nameOutput);
        ShapeCheck.Rank(table, 2, nameof(table), "[V, C]");
        ShapeCheck.Require(
            output.Shape.Rank == ids.Shape.Rank + 1 && output.Shape[-1] == table.Shape[1] && output.Count == ids.Count * table.Shape[1],
            $"embedding: {nameOutput} {output.Shape} must be ids {ids.Shape} + [{table.Shape[1]}] for table {table.Shape}");
        CheckIndices(ids, 0, table.Shape[0], nameof(ids));
    }

    private void CrossEntropyArgs(Tensor logits, Tensor targets, Tensor losses, string nameLosses)
    {
        Own(logits, nameof(logits));
        Own(targets, nameof(targets), DType.Int32);
        Own(losses, nameLosses);
        ShapeCheck.Require(logits.Shape.Rank >= 1 && logits.Shape[-1] > 0, $"cross-entropy: logits {logits.Shape} need a non-empty vocabulary dimension");
        ShapeCheck.Require(
            targets.Count == logits.Shape.Rows && targets.Shape.Rank == logits.Shape.Rank - 1,
            $"cross-entropy: targets {targets.Shape} must be logits {logits.Shape} without the last dimension");
        ShapeCheck.Same(targets, nameof(targets), losses, nameLosses);
        CheckIndices(targets, int.MinValue, logits.Shape[-1], nameof(targets));
    }
}
