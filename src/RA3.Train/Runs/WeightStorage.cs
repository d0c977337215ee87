using RA3.Kernels.Tensors;

namespace RA3.Train.Runs;

/// <summary>
/// How a command stores a model's weights (<c>--dtype</c>) and the models it saves
/// (<c>--save-dtype</c>): the values, their help lines and their meaning, written once for every
/// command that loads or trains a model. bf16 weights keep f32 activations, gradients and (in
/// training) f32 master weights: the mixed-precision contract of <c>RA3.Kernels.Ops.Backend</c>.
/// </summary>
public static class WeightStorage
{
    /// <summary>The values both options take.</summary>
    public const string Choices = "auto|f32|bf16";

    /// <summary>Help line of <c>--dtype</c>.</summary>
    public const string Help = "weights stored as: auto (the checkpoint's own; f32 for a fresh model) | f32 | bf16 (f32 activations, gradients and master weights)";

    /// <summary>Help line of <c>--save-dtype</c>.</summary>
    public const string SaveHelp = "saved model stored as: auto (as the input checkpoint; a fresh model as --dtype) | f32 | bf16";

    /// <summary>The storage a value names; null for <c>auto</c>.</summary>
    public static DType? Parse(string value, string option = "dtype") => value switch
    {
        "auto" => null,
        "f32" => DType.Float32,
        "bf16" => DType.BFloat16,
        _ => throw new SettingsException(option, $"'{value}' is not one of {Choices}"),
    };
}
