using System.Text.Json.Nodes;
using RA3.Kernels.Cpu;
using RA3.Kernels.Tensors;
using RA3.Model;
using RA3.Model.Config;
using RA3.Model.IO;
using RA3.Train.Runs;

namespace RA3.Train.Initialization;

/// <summary>
/// A Hugging Face model folder of any supported shape with GPT-2-style random weights: real
/// shapes to measure with (a 7B model's memory and load time, a 0.5B model's training speed)
/// before downloading the real weights, and a start for pre-training from scratch.
/// </summary>
public static class RandomModel
{
    /// <summary>Writes the folder <paramref name="s"/> describes; returns the model's config and parameter count.</summary>
    public static (ModelConfig Config, long Parameters, DType Stored) Write(InitSettings s, TextWriter log)
    {
        Declared.Validate(s);
        string configPath = Directory.Exists(s.Config!) ? Path.Combine(s.Config!, "config.json") : s.Config!;
        var config = ModelConfig.Load(configPath);
        var stored = WeightStorage.Parse(s.DType) ?? TorchDType(configPath);
        log.WriteLine($"{config.ModelType}: {config.ParameterCount:N0} parameters, stored as {stored}; initialising ({config.ParameterCount * stored.SizeInBytes() / 1e9:F1} GB)");
        using var backend = new CpuBackend();
        using var model = new Transformer(backend, config, weights: stored);
        model.InitializeRandom(s.Seed);
        HuggingFaceCheckpoint.Save(model, s.Out!);
        if (s.Tokenizer is { } spec)
        {
            string tokenizer = Directory.Exists(spec) ? Path.Combine(spec, "tokenizer.json") : spec;
            File.Copy(tokenizer, Path.Combine(s.Out!, "tokenizer.json"), overwrite: true);
            string tokenizerConfig = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizer))!, "tokenizer_config.json");
            if (File.Exists(tokenizerConfig))
            {
                File.Copy(tokenizerConfig, Path.Combine(s.Out!, "tokenizer_config.json"), overwrite: true);
            }
        }

        return (config, config.ParameterCount, stored);
    }

    // config.json's dtype (transformers 5; torch_dtype before): bfloat16 (and float16, which bf16
    // holds in range) as bf16, anything else f32.
    private static DType TorchDType(string configPath)
    {
        var json = JsonFile.ReadObject(configPath);
        return (json["dtype"] ?? json["torch_dtype"]) is JsonValue v && v.TryGetValue(out string? t) && t is "bfloat16" or "float16" ? DType.BFloat16 : DType.Float32;
    }
}
