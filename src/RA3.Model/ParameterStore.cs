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
/// All parameters of a model in one contiguous float32 buffer with named views (llm.c style), in
/// the order <see cref="Parameters.Layout"/> gives. The same layout serves the gradients and the
/// optimizer moments, so a whole-model operation (zero, clip, sum of squares) is one call.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private readonly Dictionary<string, Tensor> views = new(StringComparer.Ordinal);

    /// <summary>Allocates a zeroed store laid out for <paramref name="config"/> on <paramref name="backend"/>.</summary>
    public ParameterStore(Backend backend, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(backend);
        Specs = Parameters.Layout(config);
        var last = Specs[^1];
        Buffer = backend.Empty(DType.Float32, checked((int)(last.Offset + last.Count)));
        foreach (var spec in Specs)
        {
            views[spec.Name] = Buffer.View(spec.Offset, spec.Shape);
        }
    }

    /// <summary>The specs in storage order.</summary>
    public IReadOnlyList<ParameterSpec> Specs { get; }

    /// <summary>The whole buffer as one rank-1 tensor (gaps between tensors stay zero).</summary>
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

        int q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim;
        if (c.Family == ModelFamily.Gpt2)
        {
            Add("transformer.wte.weight", false, c.VocabSize, c.Hidden);
            Add("transformer.wpe.weight", false, c.MaxPositions, c.Hidden);
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"transformer.h.{l}.";
                Add(p + "ln_1.weight", false, c.Hidden);
                Add(p + "ln_1.bias", false, c.Hidden);
                Add(p + "attn.c_attn.weight", true, c.Hidden, 3 * c.Hidden);
                Add(p + "attn.c_attn.bias", false, 3 * c.Hidden);
                Add(p + "attn.c_proj.weight", true, c.Hidden, c.Hidden);
                Add(p + "attn.c_proj.bias", false, c.Hidden);
                Add(p + "ln_2.weight", false, c.Hidden);
                Add(p + "ln_2.bias", false, c.Hidden);
                Add(p + "mlp.c_fc.weight", true, c.Hidden, c.Intermediate);
                Add(p + "mlp.c_fc.bias", false, c.Intermediate);
                Add(p + "mlp.c_proj.weight", true, c.Intermediate, c.Hidden);
                Add(p + "mlp.c_proj.bias", false, c.Hidden);
            }

            Add("transformer.ln_f.weight", false, c.Hidden);
            Add("transformer.ln_f.bias", false, c.Hidden);
        }
        else
        {
            Add("model.embed_tokens.weight", false, c.VocabSize, c.Hidden);
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"model.layers.{l}.";
                Add(p + "input_layernorm.weight", false, c.Hidden);
                Add(p + "self_attn.q_proj.weight", true, q, c.Hidden);
                Add(p + "self_attn.k_proj.weight", true, kv, c.Hidden);
                Add(p + "self_attn.v_proj.weight", true, kv, c.Hidden);
                if (c.QkvBias)
                {
                    Add(p + "self_attn.q_proj.bias", false, q);
                    Add(p + "self_attn.k_proj.bias", false, kv);
                    Add(p + "self_attn.v_proj.bias", false, kv);
                }

                Add(p + "self_attn.o_proj.weight", true, c.Hidden, q);
                if (c.OutputBias)
                {
                    Add(p + "self_attn.o_proj.bias", false, c.Hidden);
                }

                Add(p + "post_attention_layernorm.weight", false, c.Hidden);
                Add(p + "mlp.gate_proj.weight", true, c.Intermediate, c.Hidden);
                Add(p + "mlp.up_proj.weight", true, c.Intermediate, c.Hidden);
                Add(p + "mlp.down_proj.weight", true, c.Hidden, c.Intermediate);
            }

            Add("model.norm.weight", false, c.Hidden);
        }

        if (!c.TiedHead)
        {
            Add("lm_head.weight", true, c.VocabSize, c.Hidden);
        }

        return specs;
    }

    /// <summary>The name of the token embedding (also the head when tied).</summary>
    public static string Embedding(ModelConfig c) => c.Family == ModelFamily.Gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";

    /// <summary>The name of the output head's weight [V, C].</summary>
    public static string Head(ModelConfig c) => c.TiedHead ? Embedding(c) : "lm_head.weight";
}
