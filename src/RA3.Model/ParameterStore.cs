using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model.Config;

namespace RA3.Model;

/// <summary>One named parameter tensor: its Hugging Face name, shape, offset in the store, and whether weight decay applies.</summary>
/// <param name="Name">Hugging Face tensor name (<c>model.layers.0.self_attn.q_proj.weight</c>).</param>
/// <param name="Shape">Shape as the checkpoint stores it.</param>
/// <param name="Offset">Element offset in the contiguous buffer (64-byte aligned).</param>
/// <param name="Decay">Whether AdamW's decoupled weight decay applies (matrices; not norms, biases, embeddings).</param>
public sealed record ParameterSpec(string Name, int[] Shape, long Offset, bool Decay)
{
    /// <summary>Number of elements.</summary>
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// All parameters of a model in one contiguous buffer with named views (llm.c style), in the order
/// <see cref="Parameters.Layout"/> gives, stored as float32 or bfloat16 (a bf16 model's weights;
/// gradients, optimizer moments and master weights are float32 by the mixed-precision contract).
/// The same layout serves all of them, so a whole-model operation (zero, clip, sum of squares,
/// the master → bf16 copy) is one call. Element counts are 64-bit: a 7B model's 7.6·10⁹ weights
/// are one buffer.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private readonly Dictionary<string, Tensor> views = new(StringComparer.Ordinal);

    /// <summary>Allocates a zeroed store of <paramref name="dtype"/> laid out for <paramref name="config"/> on <paramref name="backend"/>.</summary>
    public ParameterStore(Backend backend, ModelConfig config, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (dtype is not (DType.Float32 or DType.BFloat16))
        {
            throw new ArgumentException($"parameters are stored as Float32 or BFloat16, not {dtype}", nameof(dtype));
        }

        Specs = Parameters.Layout(config);
        var last = Specs[^1];
        Buffer = backend.Buffer(dtype, last.Offset + last.Count);
        foreach (var spec in Specs)
        {
            views[spec.Name] = Buffer.View(spec.Offset, spec.Shape);
        }
    }

    /// <summary>The specs in storage order.</summary>
    public IReadOnlyList<ParameterSpec> Specs { get; }

    /// <summary>How the elements are stored.</summary>
    public DType DType => Buffer.DType;

    /// <summary>The whole buffer as one tensor (rank 1, or [rows, 2^20] past 2^31 elements; gaps between tensors stay zero).</summary>
    public Tensor Buffer { get; }

    /// <summary>The view of the named tensor.</summary>
    public Tensor this[string name] => views.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"no parameter named '{name}'");

    /// <summary>Whether the store has a tensor of that name.</summary>
    public bool Contains(string name) => views.ContainsKey(name);

    /// <inheritdoc/>
    public void Dispose() => Buffer.Dispose();
}

/// <summary>The parameter names and shapes of each family, exactly as Hugging Face checkpoints store them.</summary>
public static class Parameters
{
    /// <summary>Alignment of every tensor in the buffer, in floats (64 bytes).</summary>
    public const int Alignment = 16;

    /// <summary>The parameter specs of <paramref name="c"/> in storage order; a tied head has no tensor of its own.</summary>
    public static IReadOnlyList<ParameterSpec> Layout(ModelConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        var specs = new List<ParameterSpec>();
        long offset = 0;
        void Add(string name, bool decay, params int[] shape)
        {
            var spec = new ParameterSpec(name, shape, offset, decay);
            specs.Add(spec);
            offset += (spec.Count + Alignment - 1) / Alignment * Alignment;
        }

        // One walk over the family's names and traits; Block binds the same names.
        var f = c.Family;
        var n = f.Names;
        void Norm(string name)
        {
            Add(name + ".weight", false, c.Hidden);
            if (f.Norm == NormKind.LayerNorm)
            {
                Add(name + ".bias", false, c.Hidden);
            }
        }

        // A projection in → out, stored [in, out] (Conv1D) or [out, in] (nn.Linear).
        void Projection(string name, int input, int output, bool bias)
        {
            Add(name + ".weight", true, f.WeightsInOut ? [input, output] : [output, input]);
            if (bias)
            {
                Add(name + ".bias", false, output);
            }
        }

        int q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim;
        Add(n.Embedding, false, c.VocabSize, c.Hidden);
        if (n.Positions is not null)
        {
            Add(n.Positions, false, c.MaxPositions, c.Hidden);
        }

        for (int l = 0; l < c.Layers; l++)
        {
            string p = n.Block(l);
            Norm(p + n.Norm1);
            if (n.Qkv is not null)
            {
                Projection(p + n.Qkv, c.Hidden, q + (2 * kv), f.LinearBiases);
            }
            else
            {
                // Weights first, then the biases: the layout (and so the checkpoint order) of Llama and Qwen2.
                Projection(p + n.Q, c.Hidden, q, false);
                Projection(p + n.K, c.Hidden, kv, false);
                Projection(p + n.V, c.Hidden, kv, false);
                if (c.QkvBias || f.LinearBiases)
                {
                    Add(p + n.Q + ".bias", false, q);
                    Add(p + n.K + ".bias", false, kv);
                    Add(p + n.V + ".bias", false, kv);
                }
            }

            Projection(p + n.Output, q, c.Hidden, f.LinearBiases || c.OutputBias);
            if (f.QkNorm)
            {
                Add(p + n.QNorm + ".weight", false, c.HeadDim);
                Add(p + n.KNorm + ".weight", false, c.HeadDim);
            }

            Norm(p + n.Norm2);
            Projection(p + n.Hidden, c.Hidden, c.Intermediate, f.LinearBiases);
            if (n.Up is not null)
            {
                Projection(p + n.Up, c.Hidden, c.Intermediate, f.LinearBiases);
            }

            Projection(p + n.Down, c.Intermediate, c.Hidden, f.LinearBiases);
        }

        Norm(n.FinalNorm);
        if (!c.TiedHead)
        {
            Add(n.Head, true, c.VocabSize, c.Hidden);
        }

        return specs;
    }

    /// <summary>The name of the token embedding (also the head when tied).</summary>
    public static string Embedding(ModelConfig c) => c.Family.Names.Embedding;

    /// <summary>The name of the output head's weight [V, C].</summary>
    public static string Head(ModelConfig c) => c.TiedHead ? Embedding(c) : c.Family.Names.Head;
}
