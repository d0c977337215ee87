using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RA3.Model.IO;

/// <summary>One tensor entry of a safetensors header.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DType">safetensors dtype string: F32, F16, BF16, F64, I64, I32.</param>
/// <param name="Shape">Shape.</param>
/// <param name="Begin">Byte offset of the data, from the start of the data section.</param>
/// <param name="End">End byte offset (exclusive).</param>
public sealed record SafeTensorInfo(string Name, string DType, int[] Shape, long Begin, long End)
{
    /// <summary>Number of elements.</summary>
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// Reader of the safetensors format (8-byte little-endian header length, JSON header, raw data),
/// reading tensors on demand so large checkpoints are never loaded whole. Every structural
/// problem — truncation, offsets outside the file, sizes that disagree with shapes, a checksum
/// that does not match — is an <see cref="InvalidDataException"/> naming the file and the tensor.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>Metadata key of the SHA-256 (hex) of the data section, written by <see cref="SafeTensorsWriter"/>.</summary>
    public const string ChecksumKey = "ra3.sha256";

    private const long MaxHeader = 100_000_000;
    private readonly FileStream stream;
    private readonly Dictionary<string, SafeTensorInfo> tensors = new(StringComparer.Ordinal);
    private readonly long dataStart;

    private SafeTensorsFile(string path)
    {
        Path = path;
        stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
        try
        {
            long length = stream.Length;
            if (length < 8)
            {
                throw Bad($"file is {length} bytes, shorter than the 8-byte header length");
            }

            Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > MaxHeader || (long)headerLength > length - 8)
            {
                throw Bad($"header length {headerLength} does not fit in a file of {length} bytes (truncated or not safetensors)");
            }

            var header = new byte[headerLength];
            stream.ReadExactly(header);
            dataStart = 8 + (long)headerLength;
            DataLength = length - dataStart;
            ParseHeader(header);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Bytes in the data section.</summary>
    public long DataLength { get; }

    /// <summary>The <c>__metadata__</c> string map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; private set; } = new Dictionary<string, string>();

    /// <summary>The tensors, in header order.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; private set; } = [];

    /// <summary>Opens and validates the header of <paramref name="path"/>.</summary>
    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such safetensors file", path);
        }

        return new SafeTensorsFile(path);
    }

    /// <summary>Bytes per element of a safetensors dtype.</summary>
    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => 0,
    };

    /// <summary>Whether the file has a tensor of that name.</summary>
    public bool Contains(string name) => tensors.ContainsKey(name);

    /// <summary>The entry of the named tensor.</summary>
    public SafeTensorInfo Info(string name) =>
        tensors.TryGetValue(name, out var info) ? info : throw Bad($"no tensor named '{name}'");

    /// <summary>Reads a float tensor (F32, F16, BF16 or F64) as float32 into <paramref name="destination"/> (length = element count).</summary>
    public void ReadFloats(string name, Span<float> destination)
    {
        var info = Info(name);
        if (destination.Length != info.Count)
        {
            throw Bad($"tensor '{name}' has {info.Count} elements, the destination {destination.Length}");
        }

        switch (info.DType)
        {
            case "F32":
                Read(info, MemoryMarshal.AsBytes(destination));
                break;
            case "F16" or "BF16" or "F64":
                {
                    int size = ElementSize(info.DType);
                    byte[] raw = ArrayPool<byte>.Shared.Rent(checked((int)(info.Count * size)));
                    try
                    {
                        var bytes = raw.AsSpan(0, (int)(info.Count * size));
                        Read(info, bytes);
                        Widen(info.DType, bytes, destination);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(raw);
                    }

                    break;
                }

            default:
                throw Bad($"tensor '{name}' has dtype {info.DType}, expected a float type (F32, F16, BF16, F64)");
        }
    }

    /// <summary>
    /// Reads float tensor <paramref name="name"/> (F32, F16, BF16 or F64) into
    /// <paramref name="destination"/> (float32 or bfloat16 storage, on any backend, with as many
    /// elements), a chunk at a time: a tensor of any size (a 7B model's 2 GiB head) streams through
    /// a few MiB of host memory. Same-type data is copied as it is; a narrower destination rounds
    /// to nearest even (a float32 checkpoint loaded as bf16), a wider one widens exactly.
    /// </summary>
    public void ReadInto(string name, Kernels.Tensors.Tensor destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var info = Info(name);
        if (destination.Count != info.Count)
        {
            throw Bad($"tensor '{name}' has {info.Count} elements, the destination {destination.Count}");
        }

        ReadInto(info, destination, 0);
    }

    /// <summary>
    /// Reads elements <paramref name="first"/> .. <paramref name="first"/> + destination.Count − 1 of
    /// float tensor <paramref name="name"/> into <paramref name="destination"/>, as
    /// <see cref="ReadInto(string, Kernels.Tensors.Tensor)"/> reads a whole one: a rank's shard of
    /// the optimizer state.
    /// </summary>
    public void ReadPartInto(string name, Kernels.Tensors.Tensor destination, long first)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var info = Info(name);
        if (first < 0 || first + destination.Count > info.Count)
        {
            throw Bad($"tensor '{name}' has {info.Count} elements, not elements {first} .. {first + destination.Count - 1}");
        }

        ReadInto(info, destination, first);
    }

    private void ReadInto(SafeTensorInfo info, Kernels.Tensors.Tensor destination, long first)
    {
        string name = info.Name;
        if (info.DType is not ("F32" or "F16" or "BF16" or "F64"))
        {
            throw Bad($"tensor '{name}' has dtype {info.DType}, expected a float type (F32, F16, BF16, F64)");
        }

        bool toBf16 = destination.DType == Kernels.Tensors.DType.BFloat16;
        if (!toBf16 && destination.DType != Kernels.Tensors.DType.Float32)
        {
            throw new ArgumentException($"{Path}: tensor '{name}' can be read into Float32 or BFloat16 storage, not {destination.DType}", nameof(destination));
        }

        int size = ElementSize(info.DType);
        const int chunk = 1 << 22; // elements per read: 16 MiB of f32
        byte[] raw = ArrayPool<byte>.Shared.Rent(chunk * size);
        float[] wide = ArrayPool<float>.Shared.Rent(chunk);
        ushort[] narrow = ArrayPool<ushort>.Shared.Rent(chunk);
        try
        {
            for (long start = 0; start < destination.Count; start += chunk)
            {
                int n = (int)Math.Min(chunk, destination.Count - start);
                var bytes = raw.AsSpan(0, n * size);
                Read(info, (first + start) * size, bytes);
                var target = destination.View(start, n);
                if (info.DType == "BF16" && toBf16)
                {
                    target.CopyFrom<byte>(bytes);
                    continue;
                }

                if (info.DType == "F32" && !toBf16)
                {
                    target.CopyFrom<byte>(bytes);
                    continue;
                }

                var floats = wide.AsSpan(0, n);
                Widen(info.DType, bytes, floats);
                if (toBf16)
                {
                    Kernels.Tensors.BFloat16.Round(floats, narrow.AsSpan(0, n));
                    target.CopyFrom<ushort>(narrow.AsSpan(0, n));
                }
                else
                {
                    target.CopyFrom<float>(floats);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
            ArrayPool<float>.Shared.Return(wide);
            ArrayPool<ushort>.Shared.Return(narrow);
        }
    }

    /// <summary>The storage of the file's float tensors: bfloat16 when every float tensor is BF16, else float32 (F16 and F64 are read exactly into float32).</summary>
    public Kernels.Tensors.DType FloatStorage =>
        Tensors.Where(t => t.DType is "F32" or "F16" or "BF16" or "F64").All(t => t.DType == "BF16") && Tensors.Count > 0 ? Kernels.Tensors.DType.BFloat16 : Kernels.Tensors.DType.Float32;

    /// <summary>Reads a float tensor as a new float32 array.</summary>
    public float[] ReadFloats(string name)
    {
        var result = new float[Info(name).Count];
        ReadFloats(name, result);
        return result;
    }

    /// <summary>Reads an integer tensor (I64 or I32) as int32, checking that every value fits.</summary>
    public int[] ReadInts(string name)
    {
        var info = Info(name);
        var result = new int[info.Count];
        if (info.DType == "I32")
        {
            Read(info, MemoryMarshal.AsBytes(result.AsSpan()));
            return result;
        }

        if (info.DType != "I64")
        {
            throw Bad($"tensor '{name}' has dtype {info.DType}, expected I64 or I32");
        }

        var wide = new long[info.Count];
        Read(info, MemoryMarshal.AsBytes(wide.AsSpan()));
        for (int i = 0; i < wide.Length; i++)
        {
            result[i] = wide[i] is >= int.MinValue and <= int.MaxValue ? (int)wide[i] : throw Bad($"tensor '{name}'[{i}] = {wide[i]} does not fit in int32");
        }

        return result;
    }

    /// <summary>
    /// Verifies the data section against the <see cref="ChecksumKey"/> metadata, when the file has
    /// it (our checkpoints do; files from elsewhere usually do not, and pass).
    /// </summary>
    public void VerifyChecksum()
    {
        if (!Metadata.TryGetValue(ChecksumKey, out string? expected))
        {
            return;
        }

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] chunk = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            for (long pos = 0; pos < DataLength;)
            {
                int n = (int)Math.Min(chunk.Length, DataLength - pos);
                RandomAccess.Read(stream.SafeFileHandle, chunk.AsSpan(0, n), dataStart + pos);
                sha.AppendData(chunk, 0, n);
                pos += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        string actual = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
        {
            throw Bad($"checksum mismatch: the data hashes to {actual}, the header says {expected} (the file is corrupt)");
        }
    }

    /// <inheritdoc/>
    public void Dispose() => stream.Dispose();

    // Floats of little-endian F32, F16, BF16 or F64 bytes.
    // The stored little-endian elements as floats, exactly: the type is chosen once per chunk, and
    // the common ones (F32, BF16: every real checkpoint) are a copy and a vector shift.
    private static void Widen(string dtype, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        switch (dtype)
        {
            case "F32":
                MemoryMarshal.Cast<byte, float>(bytes)[..destination.Length].CopyTo(destination);
                break;
            case "BF16":
                Kernels.Tensors.BFloat16.Widen(MemoryMarshal.Cast<byte, ushort>(bytes)[..destination.Length], destination);
                break;
            case "F16":
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = (float)halves[i];
                }

                break;
            default:
                var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = (float)doubles[i];
                }

                break;
        }
    }

    private void Read(SafeTensorInfo info, Span<byte> destination) => Read(info, 0, destination);

    // Bytes [offset, offset + destination.Length) of a tensor's data.
    private void Read(SafeTensorInfo info, long offset, Span<byte> destination)
    {
        int n = RandomAccess.Read(stream.SafeFileHandle, destination, dataStart + info.Begin + offset);
        if (n != destination.Length)
        {
            throw Bad($"tensor '{info.Name}': read {n} of {destination.Length} bytes at {offset} (truncated)");
        }
    }

    private InvalidDataException Bad(string what) => new($"{Path}: {what}");

    private void ParseHeader(byte[] header)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(header) as JsonObject ?? throw Bad("header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Bad($"header is not valid JSON ({e.Message})");
        }

        var list = new List<SafeTensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in json)
        {
            if (name == "__metadata__")
            {
                foreach (var (key, value) in node as JsonObject ?? throw Bad("__metadata__ is not an object"))
                {
                    metadata[key] = value is JsonValue v && v.TryGetValue(out string? s) ? s : throw Bad($"__metadata__.{key} is not a string");
                }

                continue;
            }

            list.Add(ParseEntry(name, node));
        }

        Tensors = list;
        Metadata = metadata;
        foreach (var t in list)
        {
            tensors[t.Name] = t;
        }
    }

    private SafeTensorInfo ParseEntry(string name, JsonNode? node)
    {
        try
        {
            var o = node as JsonObject ?? throw Bad($"tensor '{name}': entry is not an object");
            string dtype = o["dtype"]?.GetValue<string>() ?? throw Bad($"tensor '{name}': no dtype");
            int[] shape = [.. (o["shape"] as JsonArray ?? throw Bad($"tensor '{name}': no shape")).Select(d => d!.GetValue<int>())];
            var offsets = o["data_offsets"] as JsonArray ?? throw Bad($"tensor '{name}': no data_offsets");
            if (offsets.Count != 2)
            {
                throw Bad($"tensor '{name}': data_offsets must have two entries");
            }

            long begin = offsets[0]!.GetValue<long>(), end = offsets[1]!.GetValue<long>();
            var info = new SafeTensorInfo(name, dtype, shape, begin, end);
            int size = ElementSize(dtype);
            if (size == 0)
            {
                throw Bad($"tensor '{name}': unknown dtype '{dtype}'");
            }

            if (shape.Any(d => d < 0) || begin < 0 || end < begin || end - begin != info.Count * size)
            {
                throw Bad($"tensor '{name}': data_offsets [{begin}, {end}) do not hold {dtype} [{string.Join(", ", shape)}]");
            }

            if (end > DataLength)
            {
                throw Bad($"tensor '{name}': data ends at byte {end} of a {DataLength}-byte data section (truncated)");
            }

            return info;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Bad($"tensor '{name}': malformed entry ({e.Message})");
        }
    }
}

/// <summary>
/// Writes safetensors files deterministically (tensors in the order given, header padded with
/// spaces to 8 bytes) and atomically: a temporary file in the same folder is written, flushed to
/// disk and renamed over the target, so a crash leaves the old file or the new one, never half of
/// one. The data section's SHA-256 goes into the metadata (<see cref="SafeTensorsFile.ChecksumKey"/>).
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>Bytes the writer asks an entry for at a time, so a tensor of any size streams through a few MiB.</summary>
    public const int ChunkBytes = 1 << 24;

    /// <summary>A tensor to write: name, dtype string, shape and a callback that fills its bytes, a chunk at a time.</summary>
    /// <param name="Name">Tensor name.</param>
    /// <param name="DType">F32, BF16, I64, ...</param>
    /// <param name="Shape">Shape.</param>
    /// <param name="Fill">Writes the tensor's bytes [offset, offset + span length) into the span it is given (spans are whole elements, at most <see cref="ChunkBytes"/>).</param>
    public sealed record Entry(string Name, string DType, int[] Shape, ChunkAction Fill)
    {
        /// <summary>Bytes of data.</summary>
        public long ByteCount => Shape.Aggregate(1L, (a, d) => a * d) * SafeTensorsFile.ElementSize(DType);
    }

    /// <summary>Fills a span with the bytes of a tensor starting at byte <paramref name="offset"/>.</summary>
    public delegate void ChunkAction(long offset, Span<byte> destination);

    /// <summary>A float32 entry from an array.</summary>
    public static Entry Floats(string name, float[] values, params int[] shape) =>
        new(name, "F32", shape, (offset, d) => MemoryMarshal.AsBytes(values.AsSpan()).Slice((int)offset, d.Length).CopyTo(d));

    /// <summary>An int64 entry from int32 values.</summary>
    public static Entry Int64s(string name, int[] values, params int[] shape) =>
        new(name, "I64", shape, (offset, d) =>
        {
            for (int i = 0; i < d.Length / 8; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(d[(8 * i)..], values[(offset / 8) + i]);
            }
        });

    /// <summary>Writes <paramref name="entries"/> and <paramref name="metadata"/> to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, IReadOnlyList<Entry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        const string placeholder = "0000000000000000000000000000000000000000000000000000000000000000";
        var meta = new JsonObject();
        foreach (var (k, v) in (metadata ?? new Dictionary<string, string>()).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            meta[k] = v;
        }

        meta[SafeTensorsFile.ChecksumKey] = placeholder;
        var header = new JsonObject { ["__metadata__"] = meta };
        long offset = 0;
        foreach (var e in entries)
        {
            header[e.Name] = new JsonObject
            {
                ["dtype"] = e.DType,
                ["shape"] = new JsonArray([.. e.Shape.Select(d => (JsonNode)d)]),
                ["data_offsets"] = new JsonArray(offset, offset + e.ByteCount),
            };
            offset += e.ByteCount;
        }

        byte[] headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (headerBytes.Length + 7) / 8 * 8;
        int checksumAt = headerBytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(placeholder));
        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string temp = System.IO.Path.Combine(dir, $".{System.IO.Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
                fs.Write(prefix);
                fs.Write(headerBytes);
                for (int i = headerBytes.Length; i < padded; i++)
                {
                    fs.WriteByte((byte)' ');
                }

                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
                try
                {
                    foreach (var e in entries)
                    {
                        int element = Math.Max(1, SafeTensorsFile.ElementSize(e.DType));
                        int step = ChunkBytes / element * element;
                        for (long at = 0; at < e.ByteCount; at += step)
                        {
                            var span = buffer.AsSpan(0, (int)Math.Min(step, e.ByteCount - at));
                            span.Clear();
                            e.Fill(at, span);
                            sha.AppendData(span);
                            fs.Write(span);
                        }
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }

                fs.Position = 8 + checksumAt;
                fs.Write(Encoding.ASCII.GetBytes(Convert.ToHexStringLower(sha.GetHashAndReset())));
                fs.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
