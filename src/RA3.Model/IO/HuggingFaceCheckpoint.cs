using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using RA3.Kernels.Ops;
using RA3.Model.Config;

namespace RA3.Model.IO;

/// <summary>
/// Hugging Face model folders: <c>config.json</c> plus <c>model.safetensors</c>, or shards listed
/// by <c>model.safetensors.index.json</c>. Loads real checkpoints (F32, F16, BF16; GPT-2 names with
/// or without the <c>transformer.</c> prefix) and writes folders <c>transformers</c> loads.
/// </summary>
public static class HuggingFaceCheckpoint
{
    /// <summary>Single-file weights name.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>Shard index name.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Whether <paramref name="folder"/> looks like a Hugging Face model folder.</summary>
    public static bool IsModelFolder(string folder) =>
        File.Exists(Path.Combine(folder, "config.json")) && (File.Exists(Path.Combine(folder, WeightsFile)) || File.Exists(Path.Combine(folder, IndexFile)));

    /// <summary>Loads config and weights from <paramref name="folder"/> onto <paramref name="backend"/>.</summary>
    public static Transformer Load(string folder, Backend backend, bool trainable = false)
    {
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var model = new Transformer(backend, config, trainable);
        try
        {
            LoadWeights(model.Weights, config, folder);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Fills <paramref name="store"/> from the safetensors of <paramref name="folder"/>. Every
    /// parameter must be present with the configured shape; a tensor the model does not know is an
    /// error (a sign of the wrong architecture), except buffers transformers itself recomputes.
    /// </summary>
    public static void LoadWeights(ParameterStore store, ModelConfig config, string folder)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(config);
        var files = OpenWeights(folder);
        try
        {
            var where = new Dictionary<string, (SafeTensorsFile File, string Stored)>(StringComparer.Ordinal);
            foreach (var file in files)
            {
                file.VerifyChecksum();
                foreach (var t in file.Tensors)
                {
                    string name = Canonical(config, t.Name);
                    if (store.Contains(name))
                    {
                        where[name] = (file, t.Name);
                    }
                    else if (!Ignorable(config, name))
                    {
                        throw new InvalidDataException($"{file.Path}: tensor '{t.Name}' is not a parameter of a {config.ModelType} model with this config (wrong architecture or config?)");
                    }
                }
            }

            foreach (var spec in store.Specs)
            {
                if (!where.TryGetValue(spec.Name, out var found))
                {
                    throw new InvalidDataException($"{folder}: tensor '{spec.Name}' is missing from the checkpoint");
                }

                ReadInto(found.File, found.Stored, spec, store[spec.Name]);
            }
        }
        finally
        {
            foreach (var f in files)
            {
                f.Dispose();
            }
        }
    }

    /// <summary>
    /// Writes <c>config.json</c> and the weights (float32, Hugging Face names) to
    /// <paramref name="folder"/>; with <paramref name="maxShardBytes"/> &gt; 0, shards of at most that
    /// size plus <c>model.safetensors.index.json</c>.
    /// </summary>
    public static void Save(Transformer model, string folder, long maxShardBytes = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        Directory.CreateDirectory(folder);
        var entries = WeightEntries(model.Weights);
        AtomicFile.WriteAllText(Path.Combine(folder, "config.json"), model.Config.ToHuggingFaceJson());
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (maxShardBytes <= 0 || entries.Sum(e => e.ByteCount) <= maxShardBytes)
        {
            SafeTensorsWriter.Write(Path.Combine(folder, WeightsFile), entries, meta);
            return;
        }

        var shards = new List<List<SafeTensorsWriter.Entry>> { new() };
        long size = 0;
        foreach (var e in entries)
        {
            if (size > 0 && size + e.ByteCount > maxShardBytes)
            {
                shards.Add([]);
                size = 0;
            }

            shards[^1].Add(e);
            size += e.ByteCount;
        }

        var map = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensorsWriter.Write(Path.Combine(folder, name), shards[i], meta);
            foreach (var e in shards[i])
            {
                map[e.Name] = name;
            }
        }

        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = entries.Sum(e => e.ByteCount) },
            ["weight_map"] = map,
        };
        AtomicFile.WriteAllText(Path.Combine(folder, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Copies tensor <paramref name="stored"/> of <paramref name="file"/> into <paramref name="destination"/> after checking it has <paramref name="spec"/>'s shape (the error names the file and the tensor).</summary>
    internal static void ReadInto(SafeTensorsFile file, string stored, ParameterSpec spec, Kernels.Tensors.Tensor destination)
    {
        var info = file.Info(stored);
        if (!info.Shape.SequenceEqual(spec.Shape))
        {
            throw new InvalidDataException($"{file.Path}: tensor '{stored}' has shape [{string.Join(", ", info.Shape)}], the config gives [{string.Join(", ", spec.Shape)}]");
        }

        destination.CopyFrom<float>(file.ReadFloats(stored));
    }

    /// <summary>safetensors entries for every tensor of a store (float32, its Hugging Face name).</summary>
    public static List<SafeTensorsWriter.Entry> WeightEntries(ParameterStore store, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(store);
        return [.. store.Specs.Select(s => new SafeTensorsWriter.Entry(prefix + s.Name, "F32", s.Shape, d => store[s.Name].CopyTo(MemoryMarshal.Cast<byte, float>(d))))];
    }

    /// <summary>Opens the weight files of a folder (single file or shards).</summary>
    private static List<SafeTensorsFile> OpenWeights(string folder)
    {
        string single = Path.Combine(folder, WeightsFile), index = Path.Combine(folder, IndexFile);
        if (File.Exists(single))
        {
            return [SafeTensorsFile.Open(single)];
        }

        if (!File.Exists(index))
        {
            throw new FileNotFoundException($"{folder}: neither {WeightsFile} nor {IndexFile} exists");
        }

        var map = JsonFile.ReadObject(index)["weight_map"] as JsonObject ?? throw new InvalidDataException($"{index}: no weight_map object");

        var files = new List<SafeTensorsFile>();
        try
        {
            foreach (string shard in map.Select(p => p.Value?.GetValue<string>() ?? throw new InvalidDataException($"{index}: weight_map.{p.Key} is not a file name")).Distinct(StringComparer.Ordinal))
            {
                if (shard.Contains('/', StringComparison.Ordinal) || shard.Contains('\\', StringComparison.Ordinal))
                {
                    throw new InvalidDataException($"{index}: shard '{shard}' must be a file name in the folder");
                }

                files.Add(SafeTensorsFile.Open(Path.Combine(folder, shard)));
            }

            return files;
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }
    }

    /// <summary>Maps checkpoint names to ours: a bare base-model checkpoint (the original GPT-2's) omits the family's <see cref="ParameterNames.BaseModelPrefix"/>.</summary>
    private static string Canonical(ModelConfig c, string name) =>
        c.Family.Names.BaseModelPrefix is { } prefix && !name.StartsWith(prefix, StringComparison.Ordinal) && !name.StartsWith(c.Family.Names.Head, StringComparison.Ordinal)
            ? prefix + name
            : name;

    /// <summary>Tensors checkpoints carry that are not parameters: causal-mask buffers, cached RoPE frequencies, a tied head's copy.</summary>
    private static bool Ignorable(ModelConfig c, string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal) ||
        name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) || (c.TiedHead && name == "lm_head.weight");
}
