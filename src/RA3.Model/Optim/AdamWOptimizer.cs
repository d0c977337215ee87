using RA3.Kernels.Distributed;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Optim;

/// <summary>
/// AdamW over a model's parameter store (torch.optim.AdamW semantics, decoupled weight decay):
/// the moments are float32 buffers laid out as the weights are. Decay applies to matrices only —
/// not norms, biases or embeddings — unless <see cref="DecayAll"/> asks for it. For a model with
/// bfloat16 weights the optimizer keeps float32 master weights (<see cref="Master"/>), updates
/// them and rounds them into the model's weights after each step (mixed precision: an update far
/// below a bf16 ulp still accumulates).
/// <para>
/// In a data-parallel run the optimizer belongs to the ranks' <see cref="Group"/>, whose
/// gradients are already summed when <see cref="Step"/> runs. With <c>shardState</c> (ZeRO stage
/// 1) each rank keeps the moments and master weights of its <see cref="Shard"/> only — 1/N of
/// them — updates those weights, and all-gathers the updated weights from the others, so every
/// rank ends the step with the same weights and the optimizer's memory is divided by N.
/// </para>
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly Transformer model;
    private readonly PieceViews[] pieces;
    private bool masterCurrent;

    /// <summary>Zeroed moments for <paramref name="model"/>; <paramref name="group"/>: the ranks training it (null: this process alone); <paramref name="shardState"/>: ZeRO-1 over them.</summary>
    public AdamWOptimizer(Transformer model, float beta1 = 0.9f, float beta2 = 0.95f, float epsilon = 1e-8f, float weightDecay = 0.1f, Communicator? group = null, bool shardState = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        Group = group ?? Communicator.Single;
        Shard = shardState && Group.Size > 1 ? OptimizerShard.Of(model.Weights, Group.Rank, Group.Size) : OptimizerShard.Whole(model.Weights);
        var b = model.Backend;
        long length = Shard.Range.Count;
        M = b.Buffer(DType.Float32, length);
        V = b.Buffer(DType.Float32, length);
        if (model.Weights.DType != DType.Float32)
        {
            Master = b.Buffer(DType.Float32, length);
        }

        // The views of each piece, made once: a step allocates nothing.
        var weights = model.Weights.Buffer;
        var grads = model.Gradients?.Buffer;
        pieces = [.. Shard.Pieces.Select(p =>
        {
            long flat = p.Flat.Begin, local = flat - Shard.Range.Begin;
            return new PieceViews(
                p.Spec.Decay,
                weights.View(flat, p.Count),
                grads?.View(flat, p.Count),
                M.View(local, p.Count),
                V.View(local, p.Count),
                Master?.View(local, p.Count));
        })];
    }

    /// <summary>The ranks that train the model together (<see cref="Communicator.Single"/> for one process).</summary>
    public Communicator Group { get; }

    /// <summary>The elements whose state this rank keeps: all of them unless the state is sharded.</summary>
    public OptimizerShard Shard { get; }

    /// <summary>Float32 master weights of <see cref="Shard"/> for a model with bfloat16 weights, or null when the model's own float32 weights are updated in place.</summary>
    public Tensor? Master { get; }

    /// <summary>First-moment decay.</summary>
    public float Beta1 { get; }

    /// <summary>Second-moment decay.</summary>
    public float Beta2 { get; }

    /// <summary>Added to √v̂.</summary>
    public float Epsilon { get; }

    /// <summary>Decoupled weight decay of the matrices.</summary>
    public float WeightDecay { get; }

    /// <summary>Also decay norms, biases and embeddings.</summary>
    public bool DecayAll { get; init; }

    /// <summary>First moments of <see cref="Shard"/> (flat, the weights' layout from the shard's first element).</summary>
    public Tensor M { get; }

    /// <summary>Second moments of <see cref="Shard"/>.</summary>
    public Tensor V { get; }

    /// <summary>
    /// One update with learning rate <paramref name="learningRate"/>; <paramref name="step"/> is
    /// 1-based (bias correction). Reads the model's gradients (summed over the ranks already);
    /// does not zero them. With sharded state, ends with the all-gather of the updated weights.
    /// </summary>
    public void Step(float learningRate, int step)
    {
        if (model.Gradients is null)
        {
            throw new InvalidOperationException("the model has no gradients");
        }

        var b = model.Backend;
        if (Master is not null && !masterCurrent)
        {
            ReloadMaster();
        }

        foreach (var p in pieces)
        {
            var settings = new AdamWSettings(learningRate, Beta1, Beta2, Epsilon, p.Decay || DecayAll ? WeightDecay : 0f);
            b.AdamW(p.Master ?? p.Weights, p.Gradients!, p.M, p.V, settings, step);
            if (p.Master is not null)
            {
                b.Convert(p.Master, p.Weights);
            }
        }

        if (Shard.IsSharded)
        {
            Group.AllGather(model.Weights.Buffer, Shard.All);
        }
    }

    /// <summary>
    /// Takes the master weights from the model's: done by the first <see cref="Step"/> (so weights
    /// initialised or loaded after the optimizer was made are the ones trained), and needed again
    /// only when something else overwrites the weights mid-run. Nothing to do for float32 weights.
    /// </summary>
    public void ReloadMaster()
    {
        if (Master is not null)
        {
            foreach (var p in pieces)
            {
                model.Backend.Convert(p.Weights, p.Master!);
            }

            masterCurrent = true;
        }
    }

    /// <summary>Marks the master weights as current after a checkpoint restored them (they hold what bf16 cannot, so they are not retaken from the weights).</summary>
    internal void MastersRestored() => masterCurrent = Master is not null;

    /// <summary>The view of <paramref name="piece"/> (one of <see cref="Shard"/>'s) in a state buffer of this optimizer (<see cref="M"/>, <see cref="V"/>, <see cref="Master"/>).</summary>
    internal static Tensor PieceOf(Tensor state, OptimizerShard shard, ShardPiece piece) => state.View(piece.Flat.Begin - shard.Range.Begin, piece.Count);

    /// <inheritdoc/>
    public void Dispose()
    {
        M.Dispose();
        V.Dispose();
        Master?.Dispose();
    }

    private sealed record PieceViews(bool Decay, Tensor Weights, Tensor? Gradients, Tensor M, Tensor V, Tensor? Master);
}
