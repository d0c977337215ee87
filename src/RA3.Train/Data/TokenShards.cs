using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using RA3.Model.IO;
using RA3.Model.Tokenizers;

namespace RA3.Train.Data;

/// <summary>Documents as token ids, by index: what <see cref="PackedDataset"/> packs.</summary>
public interface ITokenDocuments : IDisposable
{
    /// <summary>Number of documents.</summary>
    long Count { get; }

    /// <summary>Tokens of document <paramref name="document"/>.</summary>
    int Length(long document);

    /// <summary>Copies tokens <paramref name="from"/>.. of document <paramref name="document"/> into <paramref name="destination"/> (its whole length).</summary>
    void Copy(long document, int from, Span<int> destination);
}

/// <summary>Documents tokenized in memory (a corpus small enough to hold, such as an M-step's).</summary>
/// <param name="documents">Each document's ids.</param>
public sealed class TokenDocuments(IReadOnlyList<int[]> documents) : ITokenDocuments
{
    /// <inheritdoc/>
    public long Count => documents.Count;

    /// <inheritdoc/>
    public int Length(long document) => documents[(int)document].Length;

    /// <inheritdoc/>
    public void Copy(long document, int from, Span<int> destination) => documents[(int)document].AsSpan(from, destination.Length).CopyTo(destination);

    /// <inheritdoc/>
    public void Dispose()
    {
        // Managed arrays: nothing to release.
    }
}

/// <summary>
/// A pre-tokenized corpus on disk, read through memory maps so that no process holds it in memory:
/// a folder with <c>shards.json</c> (format, version, the tokenizer's fingerprint and vocabulary
/// size, totals, the shard files) and shard files <c>shard-NNNNN.bin</c>, each little-endian:
/// a 64-byte header (magic <c>RA3TOKS1</c>, format version uint32, bytes per token uint32 — 2 when
/// the vocabulary fits 16 bits, else 4 — documents int64, tokens int64, byte offset of the index
/// int64, zeros), the tokens of its documents back to back, then the document index: documents + 1
/// int64 token offsets (document i is tokens [offset[i], offset[i+1])). Documents are the canonical
/// document encoding (<see cref="TextTokenizer.EncodeDocument"/>), without separators: the packer
/// adds the end-of-text id between them, as it does for text. Written to a temporary folder and
/// renamed, so a folder that exists is complete.
/// </summary>
public sealed class TokenShards : ITokenDocuments, IDisposable
{
    /// <summary>The manifest's file name.</summary>
    public const string ManifestName = "shards.json";

    /// <summary>The shard format's version (the manifest's and every shard's header's).</summary>
    public const int FormatVersion = 1;

    private const int HeaderBytes = 64;
    private static readonly byte[] Magic = "RA3TOKS1"u8.ToArray();

    private readonly List<Shard> shards = [];
    private readonly long[] firstDocument;  // per shard: the index of its first document

    private TokenShards(string dir)
    {
        Dir = dir;
        var manifest = JsonFile.ReadObject(Path.Combine(dir, ManifestName));
        string where = Path.Combine(dir, ManifestName);
        if (manifest["format"]?.GetValue<string>() != "ra3-token-shards" || manifest["version"]?.GetValue<int>() != FormatVersion)
        {
            throw new InvalidDataException($"{where}: not ra3 token shards of format version {FormatVersion} (format '{manifest["format"]}', version {manifest["version"]})");
        }

        Fingerprint = manifest["tokenizer"]?.GetValue<string>() ?? throw new InvalidDataException($"{where}: field 'tokenizer' missing");
        TokenizerName = manifest["tokenizer_name"]?.GetValue<string>() ?? Fingerprint;
        var files = manifest["shards"] as JsonArray ?? throw new InvalidDataException($"{where}: field 'shards' missing");
        try
        {
            foreach (var f in files)
            {
                shards.Add(Shard.Open(Path.Combine(dir, f!["file"]!.GetValue<string>())));
            }
        }
        catch
        {
            Dispose();
            throw;
        }

        firstDocument = new long[shards.Count + 1];
        for (int i = 0; i < shards.Count; i++)
        {
            firstDocument[i + 1] = firstDocument[i] + shards[i].Documents;
        }

        Tokens = shards.Sum(s => s.Tokens);
    }

    /// <summary>The folder.</summary>
    public string Dir { get; }

    /// <summary>The fingerprint of the tokenizer that wrote the shards (<see cref="FingerprintOf"/>).</summary>
    public string Fingerprint { get; }

    /// <summary>That tokenizer's name, for messages.</summary>
    public string TokenizerName { get; }

    /// <inheritdoc/>
    public long Count => firstDocument[^1];

    /// <summary>Tokens of all documents.</summary>
    public long Tokens { get; }

    /// <summary>Whether <paramref name="dir"/> is a shard folder.</summary>
    public static bool IsShardFolder(string dir) => File.Exists(Path.Combine(dir, ManifestName));

    /// <summary>
    /// Opens the shards in <paramref name="dir"/> for <paramref name="tokenizer"/>; shards another
    /// tokenizer wrote are refused (their ids would mean other text).
    /// </summary>
    public static TokenShards Open(string dir, TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var shards = new TokenShards(dir);
        if (shards.Fingerprint != FingerprintOf(tokenizer))
        {
            shards.Dispose();
            throw new InvalidDataException($"{dir}: these shards were tokenized by {shards.TokenizerName}, not by this run's tokenizer ({tokenizer.Name}); tokenize the corpus again with ra3 tokenize --shards");
        }

        return shards;
    }

    /// <summary>
    /// What identifies a tokenizer's ids: its vocabulary size and a hash of its document encoding of
    /// a probe text that exercises code, whitespace runs, non-Latin text and special-token text.
    /// </summary>
    public static string FingerprintOf(TextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        const string probe = "def f(x):\n    return x  # héllo 日本語 😀\n\n\t<|endoftext|></s><s>  \r\n";
        var ids = tokenizer.EncodeDocument(probe).Ids;
        var bytes = new byte[ids.Length * 4];
        for (int i = 0; i < ids.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 4), ids[i]);
        }

        return $"v{tokenizer.VocabSize}-{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}";
    }

    /// <summary>
    /// Tokenizes <paramref name="documents"/> with the canonical document encoding into a new shard
    /// folder <paramref name="dir"/> (shards of about <paramref name="shardTokens"/> tokens); returns
    /// the documents and tokens written. An existing folder is an error, not overwritten.
    /// </summary>
    public static (long Documents, long Tokens) Write(string dir, IEnumerable<string> documents, TextTokenizer tokenizer, long shardTokens = 100_000_000)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardTokens, 1);
        if (Directory.Exists(dir) || File.Exists(dir))
        {
            throw new IOException($"{dir} exists; the shards go to a new folder (remove it, or name another)");
        }

        string temp = dir.TrimEnd('/') + ".tmp";
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }

        Directory.CreateDirectory(temp);
        int width = tokenizer.VocabSize <= 65536 ? 2 : 4;
        var entries = new JsonArray();
        long documentCount = 0, tokenCount = 0;
        ShardWriter? writer = null;
        try
        {
            foreach (var batch in documents.Chunk(256))
            {
                // Encoding is the slow part and every tokenizer here is thread-safe: a batch at a time, in order.
                var encoded = new int[batch.Length][];
                Parallel.For(0, batch.Length, i => encoded[i] = tokenizer.EncodeDocument(batch[i]).Ids);
                foreach (int[] ids in encoded)
                {
                    if (writer is not null && writer.Tokens > 0 && writer.Tokens + ids.Length > shardTokens)
                    {
                        entries.Add(writer.Finish());
                        writer = null;
                    }

                    writer ??= new ShardWriter(Path.Combine(temp, $"shard-{entries.Count:D5}.bin"), width);
                    writer.Add(ids);
                    documentCount++;
                    tokenCount += ids.Length;
                }
            }

            if (writer is not null)
            {
                entries.Add(writer.Finish());
                writer = null;
            }

            var manifest = new JsonObject
            {
                ["format"] = "ra3-token-shards",
                ["version"] = FormatVersion,
                ["tokenizer"] = FingerprintOf(tokenizer),
                ["tokenizer_name"] = tokenizer.Name,
                ["vocab_size"] = tokenizer.VocabSize,
                ["bytes_per_token"] = width,
                ["documents"] = documentCount,
                ["tokens"] = tokenCount,
                ["shards"] = entries,
            };
            AtomicFile.WriteAllText(Path.Combine(temp, ManifestName), manifest.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            Directory.Move(temp, dir);
            return (documentCount, tokenCount);
        }
        finally
        {
            writer?.Dispose();
        }
    }

    /// <inheritdoc/>
    public int Length(long document)
    {
        var (shard, local) = Locate(document);
        return shard.Length(local);
    }

    /// <inheritdoc/>
    public void Copy(long document, int from, Span<int> destination)
    {
        var (shard, local) = Locate(document);
        shard.Copy(local, from, destination);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var s in shards)
        {
            s.Dispose();
        }

        shards.Clear();
    }

    private (Shard Shard, long Local) Locate(long document)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(document);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(document, Count);
        int i = Array.BinarySearch(firstDocument, document);
        i = i >= 0 ? i : ~i - 1;
        while (shards[i].Documents == 0 || firstDocument[i + 1] <= document)
        {
            i++;  // past empty shards
        }

        return (shards[i], document - firstDocument[i]);
    }

    /// <summary>One memory-mapped shard file.</summary>
    private sealed unsafe class Shard : IDisposable
    {
        private readonly MemoryMappedFile map;
        private readonly MemoryMappedViewAccessor view;
        private readonly byte* data;
        private readonly string path;
        private readonly int width;
        private readonly long indexOffset;

        private Shard(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* data, int width, long documents, long tokens, long indexOffset)
        {
            this.data = data;
            (this.path, this.map, this.view, this.width, Documents, Tokens, this.indexOffset) = (path, map, view, width, documents, tokens, indexOffset);
        }

        public long Documents { get; }

        public long Tokens { get; }

        /// <summary>Maps <paramref name="path"/> and checks its header and index against its length.</summary>
        public static Shard Open(string path)
        {
            long length = new FileInfo(path).Length;
            if (length < HeaderBytes)
            {
                throw new InvalidDataException($"{path}: {length} bytes, shorter than a shard header");
            }

            var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* data = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref data);
            data += view.PointerOffset;
            try
            {
                var header = new ReadOnlySpan<byte>(data, HeaderBytes);
                int version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
                int width = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
                long documents = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
                long tokens = BinaryPrimitives.ReadInt64LittleEndian(header[24..]);
                long index = BinaryPrimitives.ReadInt64LittleEndian(header[32..]);
                if (!header[..8].SequenceEqual(Magic) || version != FormatVersion)
                {
                    throw new InvalidDataException($"{path}: not a format-{FormatVersion} ra3 token shard (magic or version)");
                }

                if (width is not (2 or 4) || documents < 0 || tokens < 0 || index != HeaderBytes + Align(tokens * width) || length != index + ((documents + 1) * 8))
                {
                    throw new InvalidDataException($"{path}: header says {documents} documents, {tokens} tokens of {width} bytes, index at {index}, which a file of {length} bytes does not hold (truncated or corrupt)");
                }

                var shard = new Shard(path, map, view, data, width, documents, tokens, index);
                shard.CheckIndex();
                return shard;
            }
            catch
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
                view.Dispose();
                map.Dispose();
                throw;
            }
        }

        public int Length(long document) => (int)(Offset(document + 1) - Offset(document));

        public void Copy(long document, int from, Span<int> destination)
        {
            long start = Offset(document) + from;
            if (width == 2)
            {
                var source = new ReadOnlySpan<ushort>(data + HeaderBytes + (start * 2), destination.Length);
                for (int i = 0; i < destination.Length; i++)
                {
                    destination[i] = source[i];
                }
            }
            else
            {
                new ReadOnlySpan<int>(data + HeaderBytes + (start * 4), destination.Length).CopyTo(destination);
            }
        }

        public void Dispose()
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            map.Dispose();
        }

        private long Offset(long document) => BinaryPrimitives.ReadInt64LittleEndian(new ReadOnlySpan<byte>(data + indexOffset + (document * 8), 8));

        // The index must start at 0, never go back, and end at the token count: checked once at open (8 bytes a document, not the tokens).
        private void CheckIndex()
        {
            long previous = 0;
            for (long d = 0; d <= Documents; d++)
            {
                long o = Offset(d);
                if ((d == 0 && o != 0) || o < previous || o > Tokens || (d == Documents && o != Tokens))
                {
                    throw new InvalidDataException($"{path}: document index entry {d} is {o}, out of order or past the {Tokens} tokens (corrupt)");
                }

                previous = o;
            }
        }
    }

    private static long Align(long bytes) => (bytes + 7) / 8 * 8;

    /// <summary>Writes one shard: header placeholder, tokens as they come, then the index and the real header.</summary>
    private sealed class ShardWriter : IDisposable
    {
        private readonly FileStream file;
        private readonly string path;
        private readonly int width;
        private readonly List<long> offsets = [0];
        private readonly byte[] buffer = new byte[1 << 16];

        public ShardWriter(string path, int width)
        {
            this.path = path;
            this.width = width;
            file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            file.Write(new byte[HeaderBytes]);
        }

        public long Tokens => offsets[^1];

        public void Add(ReadOnlySpan<int> ids)
        {
            int n = 0;
            foreach (int id in ids)
            {
                if (n + width > buffer.Length)
                {
                    file.Write(buffer, 0, n);
                    n = 0;
                }

                if (width == 2)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(n), (ushort)id);
                }
                else
                {
                    BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(n), id);
                }

                n += width;
            }

            file.Write(buffer, 0, n);
            offsets.Add(offsets[^1] + ids.Length);
        }

        /// <summary>Completes the file (fsynced) and returns its manifest entry.</summary>
        public JsonObject Finish()
        {
            long tokens = offsets[^1], documents = offsets.Count - 1;
            file.Write(new byte[Align(tokens * width) - (tokens * width)]);
            long index = file.Position;
            var entry = new byte[8];
            foreach (long o in offsets)
            {
                BinaryPrimitives.WriteInt64LittleEndian(entry, o);
                file.Write(entry);
            }

            var header = new byte[HeaderBytes];
            Magic.CopyTo(header, 0);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), FormatVersion);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), width);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), documents);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), tokens);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(32), index);
            file.Position = 0;
            file.Write(header);
            file.Flush(flushToDisk: true);
            file.Dispose();
            return new JsonObject { ["file"] = Path.GetFileName(path), ["documents"] = documents, ["tokens"] = tokens };
        }

        public void Dispose() => file.Dispose();
    }
}
