namespace RA3.Kernels.Ops;

/// <summary>
/// Hyper-parameters of one AdamW step (Loshchilov and Hutter: decoupled weight decay), matching
/// <c>torch.optim.AdamW</c>: <c>p ← p·(1 − lr·wd) − lr·m̂ / (√v̂ + eps)</c> with bias-corrected moments.
/// </summary>
/// <param name="LearningRate">Step size lr.</param>
/// <param name="Beta1">Decay of the first moment.</param>
/// <param name="Beta2">Decay of the second moment.</param>
/// <param name="Epsilon">Added to √v̂.</param>
/// <param name="WeightDecay">Decoupled decay wd (0 for norms, biases and embeddings by default).</param>
public readonly record struct AdamWSettings(
    float LearningRate,
    float Beta1 = 0.9f,
    float Beta2 = 0.999f,
    float Epsilon = 1e-8f,
    float WeightDecay = 0.0f);
