using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using RA3.Kernels.Ops;
using RA3.Kernels.Tensors;
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

    /// <summary>Shards above this size: the convention of <c>save_pretrained</c>, so a 7B model is written as a few files, a 0.5B one as one.</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>
    /// Loads config and weights from <paramref name="folder"/> onto <paramref name="backend"/>,
    /// stored as <paramref name="dtype"/>: by default the checkpoint's own (bfloat16 when its float
    /// tensors are BF16, else float32; see <see cref="StoredDType"/>).
    /// </summary>
    public static Transformer Load(string folder, Backend backend, bool trainable = false, DType? dtype = null)
    {
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        var model = new Transformer(backend, config, trainable, dtype ?? StoredDType(folder));
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
    /// How a folder's weights are stored: bfloat16 when every float tensor of its safetensors is
    /// BF16 (the Hugging Face Hub's code models), else float32. Loading keeps that unless told otherwise.
    /// </summary>
    public static DType StoredDType(string folder)
    {
        var files = OpenWeights(folder);
        try
        {
            return files.All(f => f.FloatStorage == DType.BFloat16) ? DType.BFloat16 : DType.Float32;
        }
        finally
        {
            files.ForEach(f => f.Dispose());
        }
    }

    /// <summary>
    /// Writes <c>config.json</c> and the weights (Hugging Face names) to <paramref name="folder"/>,
    /// stored as <paramref name="dtype"/> (by default the model's own: a bf16 model is saved bf16);
    /// above <paramref name="maxShardBytes"/> (0: never), shards of at most that size plus
    /// <c>model.safetensors.index.json</c>.
    /// </summary>
    public static void Save(Transformer model, string folder, long maxShardBytes = DefaultMaxShardBytes, DType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Directory.CreateDirectory(folder);
        var stored = dtype ?? model.Weights.DType;
        var entries = WeightEntries(model.Weights, stored: stored);
        AtomicFile.WriteAllText(Path.Combine(folder, "config.json"), model.Config.ToHuggingFaceJson(stored));
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

    /// <summary>Copies tensor <paramref name="stored"/> of <paramref name="file"/> (from element <paramref name="first"/>, as many as <paramref name="destination"/> holds) into <paramref name="destination"/> after checking it has <paramref name="spec"/>'s shape (the error names the file and the tensor).</summary>
    internal static void ReadInto(SafeTensorsFile file, string stored, ParameterSpec spec, Tensor destination, long first = 0)
    {
        var info = file.Info(stored);
        if (!info.Shape.SequenceEqual(spec.Shape))
        {
            throw new InvalidDataException($"{file.Path}: tensor '{stored}' has shape [{string.Join(", ", info.Shape)}], the config gives [{string.Join(", ", spec.Shape)}]");
        }

        if (first == 0 && destination.Count == spec.Count)
        {
            file.ReadInto(stored, destination);
        }
        else
        {
            file.ReadPartInto(stored, destination, first);
        }
    }

    /// <summary>
    /// safetensors entries for every tensor of a store (its Hugging Face name after
    /// <paramref name="prefix"/>), written as <paramref name="stored"/> (by default the store's own
    /// type; float32 ↔ bfloat16 converted a chunk at a time, bf16 rounded to nearest even).
    /// </summary>
    public static List<SafeTensorsWriter.Entry> WeightEntries(ParameterStore store, string prefix = "", DType? stored = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var to = stored ?? store.DType;
        return [.. store.Specs.Select(s => new SafeTensorsWriter.Entry(prefix + s.Name, to == DType.BFloat16 ? "BF16" : "F32", s.Shape, (offset, d) => Fill(store[s.Name], to, offset, d)))];
    }

    /// <summary>Bytes [offset, offset + d.Length) of tensor t written as <paramref name="to"/>: a safetensors entry's fill.</summary>
    internal static void Fill(Tensor t, DType to, long offset, Span<byte> d)
    {
        int size = to.SizeInBytes();
        long first = offset / size;
        int n = d.Length / size;
        var view = t.View(first, n);
        if (t.DType == to)
        {
            view.CopyTo<byte>(d);
        }
        else if (to == DType.BFloat16)
        {
            float[] stored = ArrayPool<float>.Shared.Rent(n);  // a chunk of the writer's, a few MiB: pooled, not allocated per chunk
            try
            {
                view.CopyTo<float>(stored.AsSpan(0, n));
                BFloat16.Round(stored.AsSpan(0, n), MemoryMarshal.Cast<byte, ushort>(d));
            }
            finally
            {
                ArrayPool<float>.Shared.Return(stored);
            }
        }
        else
        {
            ushort[] stored = ArrayPool<ushort>.Shared.Rent(n);
            try
            {
                view.CopyTo<ushort>(stored.AsSpan(0, n));
                BFloat16.Widen(stored.AsSpan(0, n), MemoryMarshal.Cast<byte, float>(d));
            }
            finally
            {
                ArrayPool<ushort>.Shared.Return(stored);
            }
        }
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
