using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
using RA3.Model.Config;

namespace RA3.Model.Generation;

/// <summary>
/// Keys (after RoPE) and values of every layer for B sequences of up to S positions, in one
/// buffer: layer l's keys are [B, S, Hkv, D]. Each sequence has its own length, so a batch of
/// prompts of different lengths decodes together.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor buffer;

    /// <summary>Allocates a zeroed cache.</summary>
    public KvCache(Backend backend, ModelConfig config, int batch, int capacity)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        if (batch <= 0 || capacity <= 0)
        {
            throw new ArgumentException($"a KV cache needs a positive batch and capacity, got {batch} × {capacity}");
        }

        B = batch;
        Capacity = capacity;
        int row = config.KvHeads * config.HeadDim;
        long perLayer = (long)batch * capacity * row;
        buffer = backend.Buffer(DType.Float32, 2 * perLayer * config.Layers);
        Keys = new Tensor[config.Layers];
        Values = new Tensor[config.Layers];
        KeyRows = new Tensor[config.Layers];
        ValueRows = new Tensor[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            Keys[l] = buffer.View(2 * l * perLayer, batch, capacity, config.KvHeads, config.HeadDim);
            Values[l] = buffer.View(((2 * l) + 1) * perLayer, batch, capacity, config.KvHeads, config.HeadDim);
            KeyRows[l] = Keys[l].Reshape(batch, capacity * row);
            ValueRows[l] = Values[l].Reshape(batch, capacity * row);
        }

        Lengths = new int[batch];
    }

    /// <summary>Number of sequences B.</summary>
    public int B { get; }

    /// <summary>Positions per sequence S.</summary>
    public int Capacity { get; }

    /// <summary>Filled positions per sequence (host copy; the model advances it).</summary>
    public int[] Lengths { get; }

    internal Tensor[] Keys { get; }

    internal Tensor[] Values { get; }

    internal Tensor[] KeyRows { get; }

    internal Tensor[] ValueRows { get; }

    /// <inheritdoc/>
    public void Dispose() => buffer.Dispose();
}
