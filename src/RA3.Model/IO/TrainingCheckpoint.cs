using System.Globalization;
using RA3.Kernels.Distributed;
using RA3.Kernels.Tensors;
using RA3.Model.Optim;

namespace RA3.Model.IO;

/// <summary>What a training run needs besides weights and moments to continue exactly.</summary>
/// <param name="Step">Optimizer steps taken.</param>
/// <param name="DataPosition">Where the data loader is, in the loader's own text form (it carries the loader's RNG state).</param>
/// <param name="Settings">The run's settings (JSON), so a resume can check it continues the same run.</param>
/// <param name="Files">Text files saved beside the weights (name → contents), for state too large for metadata — the E-step's best-candidate tables; each is checksummed like the weights. Null: none.</param>
public sealed record TrainingState(int Step, string DataPosition, string Settings, IReadOnlyDictionary<string, string>? Files = null);

/// <summary>
/// Training checkpoints: a folder <c>step-NNNNNNNN</c> under <c>checkpoints/</c> holding a Hugging
/// Face model (<c>config.json</c>, <c>model.safetensors</c> in the model's storage type — loadable by transformers and by
/// <c>ra3 score</c>) and <c>trainer.safetensors</c> (AdamW moments, a bf16 model's float32 master weights, step, data position with the loader's RNG,
/// settings), and any <see cref="TrainingState.Files"/>. Files carry SHA-256 checksums; the folder is written under a temporary name and
/// renamed, then <c>latest</c> is replaced atomically, so a kill at any moment leaves the last
/// complete checkpoint in place.
/// <para>
/// In a data-parallel run (the optimizer's <see cref="AdamWOptimizer.Group"/>) every rank calls
/// <see cref="Save"/> and <see cref="Load"/>: the ranks first compare a digest of their weights
/// (all ranks must hold the same), rank 0 alone writes — collecting the optimizer state from the
/// ranks tensor by tensor when it is sharded — and each rank reads back only its own shard. The
/// files are the same whatever the world size, so a run resumes on any number of ranks.
/// </para>
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>Name of the optimizer-state file.</summary>
    public const string TrainerFile = "trainer.safetensors";

    // Tensor-name prefix of the float32 master weights of a bf16 model.
    private const string MasterPrefix = "master.";

    // Metadata key prefix of a side file's SHA-256 (hex).
    private const string FileChecksumKey = "sha256:";

    /// <summary>
    /// Writes a checkpoint for <paramref name="state"/> and keeps the newest <paramref name="keep"/>;
    /// returns its folder. Every rank of the optimizer's group calls it; only rank 0 writes.
    /// </summary>
    public static string Save(string runDir, Transformer model, AdamWOptimizer optimizer, TrainingState state, int keep = 3)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        var group = optimizer.Group;
        CheckSameWeights(model, group, state.Step);
        string root = Path.Combine(runDir, "checkpoints");
        string name = $"step-{state.Step:D8}", final = Path.Combine(root, name), temp = Path.Combine(root, $".{name}.{Environment.ProcessId}.tmp");
        if (!group.IsRoot)
        {
            // Rank 0 writes; with sharded state, it collects each tensor from the ranks as it goes.
            foreach (var (_, store) in optimizer.Shard.IsSharded ? StateStores(optimizer) : [])
            {
                foreach (var spec in model.Weights.Specs)
                {
                    GatherToRoot(optimizer, store, spec, []);
                }
            }

            group.Barrier();
            return final;
        }

        Directory.CreateDirectory(root);
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }

        try
        {
            HuggingFaceCheckpoint.Save(model, temp);
            var entries = new List<SafeTensorsWriter.Entry>();
            foreach (var (prefix, store) in StateStores(optimizer))
            {
                entries.AddRange(StateEntries(optimizer, store, prefix, model.Weights.Specs));
            }

            var metadata = new Dictionary<string, string>
            {
                ["format"] = FormatVersion.Current.ToString(CultureInfo.InvariantCulture),
                ["step"] = state.Step.ToString(CultureInfo.InvariantCulture),
                ["data"] = state.DataPosition,
                ["settings"] = state.Settings,
            };
            foreach (var (file, text) in state.Files ?? new Dictionary<string, string>())
            {
                if (file != Path.GetFileName(file) || file is TrainerFile or "config.json" or "model.safetensors")
                {
                    throw new ArgumentException($"checkpoint file name '{file}' must be a plain name other than the model's and trainer's files", nameof(state));
                }

                byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
                File.WriteAllBytes(Path.Combine(temp, file), bytes);
                metadata[FileChecksumKey + file] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
            }

            SafeTensorsWriter.Write(Path.Combine(temp, TrainerFile), entries, metadata);
        }
        catch (IOException e)
        {
            // A full disk (or any write error) before the rename: the previous checkpoint and the
            // latest pointer are untouched; the partial folder goes.
            TryDelete(temp);
            string previous = Latest(runDir) ?? "none";
            throw new IOException($"could not write checkpoint {name} in {root} ({e.Message}); the previous checkpoint ({previous}) and the latest pointer are unchanged", e);
        }

        if (Directory.Exists(final))
        {
            Directory.Delete(final, recursive: true);
        }

        Directory.Move(temp, final);
        AtomicFile.WriteAllText(Path.Combine(root, "latest"), name + "\n");
        foreach (string old in Directory.GetDirectories(root, "step-*").Order(StringComparer.Ordinal).SkipLast(Math.Max(keep, 1)))
        {
            Directory.Delete(old, recursive: true);
        }

        group.Barrier();
        return final;
    }

    /// <summary>
    /// Throws when the ranks of <paramref name="group"/> do not all hold the same weights (compared
    /// by the first 8 bytes of each rank's SHA-256 of its weights, all-gathered): data-parallel
    /// ranks end every step with identical weights, or they have diverged.
    /// </summary>
    public static void CheckSameWeights(Transformer model, Communicator group, int step)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(group);
        if (group.Size == 1)
        {
            return;
        }

        var digests = group.AllGather(Digest(model.Weights.Buffer).AsSpan(0, 8));
        if (digests.Any(d => !d.AsSpan().SequenceEqual(digests[0])))
        {
            string each = string.Join(", ", digests.Select((d, r) => $"rank {r} {Convert.ToHexStringLower(d)}"));
            throw new InvalidOperationException($"the ranks' weights differ after step {step} ({each}): the data-parallel ranks have diverged, so no checkpoint was written");
        }
    }

    // SHA-256 of a tensor's stored bytes, read a few MiB at a time.
    private static byte[] Digest(Tensor t)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        int size = t.DType.SizeInBytes(), chunk = (1 << 24) / size;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(chunk * size);
        try
        {
            for (long at = 0; at < t.Count; at += chunk)
            {
                int n = (int)Math.Min(chunk, t.Count - at);
                var bytes = buffer.AsSpan(0, n * size);
                t.View(at, n).CopyTo<byte>(bytes);
                sha.AppendData(bytes);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        return sha.GetHashAndReset();
    }

    // The optimizer's state buffers and the prefixes of their tensors in trainer.safetensors.
    private static List<(string Prefix, Tensor Store)> StateStores(AdamWOptimizer optimizer)
    {
        var stores = new List<(string, Tensor)> { ("m.", optimizer.M), ("v.", optimizer.V) };
        if (optimizer.Master is { } master)
        {
            stores.Add((MasterPrefix, master));
        }

        return stores;
    }

    // Rank 0's entries of one state buffer, one per parameter tensor: read from its own buffer, or,
    // when the state is sharded, gathered from the ranks when the writer reaches the tensor (the
    // other ranks take part in the same order, in Save).
    private static IEnumerable<SafeTensorsWriter.Entry> StateEntries(AdamWOptimizer optimizer, Tensor store, string prefix, IReadOnlyList<ParameterSpec> specs)
    {
        var shard = optimizer.Shard;
        if (!shard.IsSharded)
        {
            return specs.Select(spec => new SafeTensorsWriter.Entry(prefix + spec.Name, "F32", spec.Shape, (offset, d) =>
                HuggingFaceCheckpoint.Fill(store.View(spec.Offset - shard.Range.Begin, checked((int)spec.Count)), DType.Float32, offset, d)));
        }

        float[]? gathered = null;
        return specs.Select(spec => new SafeTensorsWriter.Entry(prefix + spec.Name, "F32", spec.Shape, (offset, d) =>
        {
            if (offset == 0)
            {
                gathered = new float[spec.Count];
                GatherToRoot(optimizer, store, spec, gathered);
            }

            System.Runtime.InteropServices.MemoryMarshal.AsBytes(gathered.AsSpan()).Slice(checked((int)offset), d.Length).CopyTo(d);
        }));
    }

    // Each rank's part of one tensor of a state buffer, gathered in order into rank 0's `into`.
    private static void GatherToRoot(AdamWOptimizer optimizer, Tensor store, ParameterSpec spec, Span<float> into)
    {
        var group = optimizer.Group;
        var shard = optimizer.Shard;
        var counts = new int[group.Size];
        for (int r = 0; r < group.Size; r++)
        {
            counts[r] = checked((int)shard.PartOf(spec, r).Count);
        }

        var mine = shard.PartOf(spec, group.Rank);
        var values = new float[mine.Count];
        if (values.Length > 0)
        {
            store.View(mine.Begin - shard.Range.Begin, values.Length).CopyTo<float>(values);
        }

        group.GatherToRoot(values, into, counts);
    }

    private static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The newest complete checkpoint of a run (by its <c>latest</c> pointer), or null if there is none.</summary>
    public static string? Latest(string runDir)
    {
        string root = Path.Combine(runDir, "checkpoints"), pointer = Path.Combine(root, "latest");
        if (!File.Exists(pointer))
        {
            return null;
        }

        string dir = Path.Combine(root, File.ReadAllText(pointer).Trim());
        return Directory.Exists(dir) ? dir : throw new InvalidDataException($"{pointer} names {dir}, which does not exist");
    }

    /// <summary>
    /// Resumes a run from its newest intact checkpoint: each <c>step-*</c> folder, newest first, is
    /// loaded into <paramref name="model"/> and <paramref name="optimizer"/> until one passes every
    /// check; a corrupt one is reported through <paramref name="warn"/> (naming it and what is wrong)
    /// and the one before it tried. Returns null when the run has no checkpoint; throws when it has
    /// some and none is intact (naming each), or when one belongs to a run with other settings.
    /// </summary>
    public static (string Dir, TrainingState State)? LoadNewestIntact(string runDir, Transformer model, AdamWOptimizer optimizer, string? settings, Action<string> warn)
    {
        ArgumentNullException.ThrowIfNull(warn);
        string root = Path.Combine(runDir, "checkpoints");
        string[] candidates = Directory.Exists(root) ? [.. Directory.GetDirectories(root, "step-*").Order(StringComparer.Ordinal).Reverse()] : [];
        var corrupt = new List<string>();
        foreach (string dir in candidates)
        {
            try
            {
                var state = Load(dir, model, optimizer, settings);
                if (corrupt.Count > 0)
                {
                    warn($"continuing from {dir}, the newest intact checkpoint");
                }

                return (dir, state);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                corrupt.Add($"{dir}: {e.Message}");
                warn($"checkpoint {dir} is corrupt ({e.Message}); trying the one before it");
            }
        }

        return corrupt.Count == 0 ? null : throw new InvalidDataException($"{runDir}: no intact checkpoint to resume from:\n  {string.Join("\n  ", corrupt)}");
    }

    /// <summary>
    /// Restores weights and moments from <paramref name="dir"/> into <paramref name="model"/> and
    /// <paramref name="optimizer"/> (whose configs must match the checkpoint's) and returns the run state.
    /// Checksums, shapes and fields are verified; errors name the file and what is wrong. With
    /// <paramref name="settings"/>, a checkpoint of a run with other settings is refused (a resume
    /// must continue the same run).
    /// </summary>
    public static TrainingState Load(string dir, Transformer model, AdamWOptimizer optimizer, string? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        var config = Config.ModelConfig.Load(Path.Combine(dir, "config.json"));
        if (config with { EosTokenIds = model.Config.EosTokenIds } != model.Config)
        {
            throw new InvalidDataException($"{dir}/config.json describes a different model than this run's");
        }

        // Everything that can refuse the checkpoint — its checksum, format, settings and side files —
        // is checked before a tensor is read, so a refused checkpoint leaves the model and optimizer as they were.
        string path = Path.Combine(dir, TrainerFile);
        using var file = SafeTensorsFile.Open(path);
        file.VerifyChecksum();
        int format = file.Metadata.TryGetValue("format", out string? f) && int.TryParse(f, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : 1;
        if (format != FormatVersion.Current)
        {
            throw new NotSupportedException(FormatVersion.Refusal($"checkpoint {dir}", format));
        }

        string Field(string key) => file.Metadata.TryGetValue(key, out string? v) ? v : throw new InvalidDataException($"{path}: metadata field '{key}' is missing");
        int step = int.TryParse(Field("step"), NumberStyles.None, CultureInfo.InvariantCulture, out int s) ? s : throw new InvalidDataException($"{path}: metadata field 'step' is not a number");
        if (settings is not null && Field("settings") != settings)
        {
            throw new InvalidOperationException($"{dir} belongs to a run with other settings:\n  saved: {Field("settings")}\n  now:   {settings}");
        }

        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, checksum) in file.Metadata.Where(kv => kv.Key.StartsWith(FileChecksumKey, StringComparison.Ordinal)))
        {
            string name = key[FileChecksumKey.Length..], sidePath = Path.Combine(dir, name);
            if (name != Path.GetFileName(name) || !File.Exists(sidePath))
            {
                throw new InvalidDataException($"{sidePath}: missing (the checkpoint lists it)");
            }

            byte[] bytes = File.ReadAllBytes(sidePath);
            if (Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)) != checksum)
            {
                throw new InvalidDataException($"{sidePath}: checksum mismatch (the file was changed or cut short)");
            }

            files[name] = System.Text.Encoding.UTF8.GetString(bytes);
        }

        var stores = StateStores(optimizer);
        foreach (var (prefix, _) in stores)
        {
            foreach (var spec in model.Weights.Specs)
            {
                string name = prefix + spec.Name;
                if (!file.Contains(name))
                {
                    throw new InvalidDataException(prefix == MasterPrefix
                        ? $"{path}: tensor '{name}' is missing (this run keeps bf16 weights with float32 masters; the checkpoint was written by a float32 run)"
                        : $"{path}: tensor '{name}' is missing");
                }
            }
        }

        HuggingFaceCheckpoint.LoadWeights(model.Weights, model.Config, dir);
        foreach (var (prefix, store) in stores)
        {
            // This rank's part of each tensor (all of it, unless the state is sharded).
            foreach (var piece in optimizer.Shard.Pieces)
            {
                HuggingFaceCheckpoint.ReadInto(file, prefix + piece.Spec.Name, piece.Spec, AdamWOptimizer.PieceOf(store, optimizer.Shard, piece), piece.First);
            }
        }

        optimizer.MastersRestored();
        return new TrainingState(step, Field("data"), Field("settings"), files.Count > 0 ? files : null);
    }
}
