namespace RA3.Model.Optim;

/// <summary>
/// Linear warmup to the peak rate, then cosine decay to <c>peak · minRatio</c> at the last step
/// (and flat after it).
/// </summary>
/// <param name="Peak">Learning rate after warmup.</param>
/// <param name="WarmupSteps">Steps of linear warmup (step 1 gets Peak/WarmupSteps).</param>
/// <param name="TotalSteps">Step at which the cosine reaches its floor.</param>
/// <param name="MinRatio">Floor as a fraction of the peak.</param>
public sealed record LearningRateSchedule(float Peak, int WarmupSteps, int TotalSteps, float MinRatio = 0.1f)
{
    /// <summary>The rate for 1-based <paramref name="step"/>.</summary>
    public float At(int step)
    {
        if (step <= WarmupSteps)
        {
            return Peak * step / Math.Max(WarmupSteps, 1);
        }

        double progress = Math.Clamp((double)(step - WarmupSteps) / Math.Max(TotalSteps - WarmupSteps, 1), 0, 1);
        double floor = Peak * MinRatio;
        return (float)(floor + ((Peak - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress))));
    }
}
