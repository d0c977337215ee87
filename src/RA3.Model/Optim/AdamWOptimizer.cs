using RA3.Kernels.Ops;

namespace RA3.Model.Optim;

/// <summary>
/// AdamW over a model's parameter store (torch.optim.AdamW semantics, decoupled weight decay):
/// the moments live in two stores of the same layout as the weights. Decay applies to matrices
/// only — not norms, biases or embeddings — unless <see cref="DecayAll"/> asks for it.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly Transformer model;

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
    }

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
        foreach (var spec in model.Weights.Specs)
        {
            var settings = new AdamWSettings(learningRate, Beta1, Beta2, Epsilon, spec.Decay || DecayAll ? WeightDecay : 0f);
            b.AdamW(model.Weights[spec.Name], grads[spec.Name], M[spec.Name], V[spec.Name], settings, step);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        M.Dispose();
        V.Dispose();
    }
}
