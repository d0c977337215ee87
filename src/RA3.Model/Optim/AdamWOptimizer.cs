using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;

namespace RA3.Model.Optim;

/// <summary>
/// AdamW over a model's parameter store (torch.optim.AdamW semantics, decoupled weight decay):
/// the moments live in two float32 stores of the same layout as the weights. Decay applies to
/// matrices only — not norms, biases or embeddings — unless <see cref="DecayAll"/> asks for it.
/// For a model with bfloat16 weights the optimizer keeps float32 master weights
/// (<see cref="Master"/>), updates them and rounds them into the model's weights after each step
/// (mixed precision: an update far below a bf16 ulp still accumulates).
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly Transformer model;
    private bool masterCurrent;

    /// <summary>Zeroed moments for <paramref name="model"/>.</summary>
    public AdamWOptimizer(Transformer model, float beta1 = 0.9f, float beta2 = 0.95f, float epsilon = 1e-8f, float weightDecay = 0.1f)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        M = new ParameterStore(model.Backend, model.Config);
        V = new ParameterStore(model.Backend, model.Config);
        if (model.Weights.DType != DType.Float32)
        {
            Master = new ParameterStore(model.Backend, model.Config);
        }
    }

    /// <summary>The float32 master weights of a model with bfloat16 weights, or null when the model's own float32 weights are updated in place.</summary>
    public ParameterStore? Master { get; }

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

    /// <summary>First moments (same layout as the weights).</summary>
    public ParameterStore M { get; }

    /// <summary>Second moments.</summary>
    public ParameterStore V { get; }

    /// <summary>
    /// One update with learning rate <paramref name="learningRate"/>; <paramref name="step"/> is
    /// 1-based (bias correction). Reads the model's gradients; does not zero them.
    /// </summary>
    public void Step(float learningRate, int step)
    {
        var grads = model.Gradients ?? throw new InvalidOperationException("the model has no gradients");
        var b = model.Backend;
        if (Master is not null && !masterCurrent)
        {
            ReloadMaster();
        }

        var weights = Master ?? model.Weights;
        foreach (var spec in weights.Specs)
        {
            var settings = new AdamWSettings(learningRate, Beta1, Beta2, Epsilon, spec.Decay || DecayAll ? WeightDecay : 0f);
            b.AdamW(weights[spec.Name], grads[spec.Name], M[spec.Name], V[spec.Name], settings, step);
        }

        if (Master is not null)
        {
            b.Convert(Master.Buffer, model.Weights.Buffer);
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
            model.Backend.Convert(model.Weights.Buffer, Master.Buffer);
            masterCurrent = true;
        }
    }

    /// <summary>Marks the master weights as current after a checkpoint restored them (they hold what bf16 cannot, so they are not retaken from the weights).</summary>
    internal void MastersRestored() => masterCurrent = Master is not null;

    /// <inheritdoc/>
    public void Dispose()
    {
        M.Dispose();
        V.Dispose();
        Master?.Dispose();
    }
}
