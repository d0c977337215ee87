using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;

namespace RA3.Model.Tokenizers.HuggingFace;

/// <summary>Reusable arrays of one word's merge loop.</summary>
internal sealed class BpeScratch
{
    /// <summary>Per symbol: its id (−1 once merged into the one before it).</summary>
    public int[] Id { get; private set; } = new int[256];

    /// <summary>Per symbol: the index in the word of the first character it covers.</summary>
    public int[] Start { get; private set; } = new int[256];

    /// <summary>Per symbol: the previous live symbol (−1: none).</summary>
    public int[] Prev { get; private set; } = new int[256];

    /// <summary>Per symbol: the next live symbol (−1: none).</summary>
    public int[] Next { get; private set; } = new int[256];

    /// <summary>Candidate merges as (rank &lt;&lt; 32 | position): a min-heap, lowest rank then leftmost first.</summary>
    public long[] Heap { get; private set; } = new long[512];

    /// <summary>Characters of a vocabulary key being built (prefix + character + suffix).</summary>
    public char[] Key { get; private set; } = new char[64];

    /// <summary>Room for <paramref name="symbols"/> symbols and a key of <paramref name="keyChars"/> characters.</summary>
    public void Ensure(int symbols, int keyChars)
    {
        if (Id.Length < symbols)
        {
            int n = Math.Max(symbols, Id.Length * 2);
            (Id, Start, Prev, Next, Heap) = (new int[n], new int[n], new int[n], new int[n], new long[n * 2]);
        }

        if (Key.Length < keyChars)
        {
            Key = new char[Math.Max(keyChars, Key.Length * 2)];
        }
    }
}

/// <summary>
/// The <c>model</c> of a tokenizer.json of type BPE, with Hugging Face tokenizers' semantics: a
/// word's characters (or, byte-level, its UTF-8 bytes as GPT-2's printable characters) are looked
/// up with <c>continuing_subword_prefix</c> / <c>end_of_word_suffix</c>; one that is not in the
/// vocabulary becomes its <c>&lt;0xXX&gt;</c> byte tokens (<c>byte_fallback</c>) or the unknown
/// token (runs fused with <c>fuse_unk</c>); then adjacent pairs merge, lowest merge rank first
/// and leftmost among equals, until none applies; <c>ignore_merges</c> takes a word that is
/// itself in the vocabulary whole. Results of short words are cached.
/// </summary>
internal sealed class BpeModel
{
    /// <summary>Longest word cached, in characters (as tokenizers).</summary>
    private const int CacheMaxChars = 256;

    /// <summary>Most words cached (then the cache stops growing).</summary>
    private const int CacheCapacity = 200_000;

    private readonly Dictionary<string, int> vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup;
    private readonly Dictionary<long, long> merges;
    private readonly string prefix;
    private readonly string suffix;
    private readonly bool byteFallback;
    private readonly bool fuseUnknown;
    private readonly bool ignoreMerges;
    private readonly int unknown;
    private readonly int[] byteTokens = new int[256];
    private readonly int[] byteLevelIds = new int[256];
    private readonly ConcurrentDictionary<string, (int[] Ids, int[] Starts)> cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int[] Ids, int[] Starts)>.AlternateLookup<ReadOnlySpan<char>> cached;

    private BpeModel(Dictionary<string, int> vocab, Dictionary<long, long> merges, string prefix, string suffix, bool byteFallback, bool fuseUnknown, bool ignoreMerges, int unknown)
    {
        this.vocab = vocab;
        lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        this.merges = merges;
        this.prefix = prefix;
        this.suffix = suffix;
        this.byteFallback = byteFallback;
        this.fuseUnknown = fuseUnknown;
        this.ignoreMerges = ignoreMerges;
        this.unknown = unknown;
        cached = cache.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int b = 0; b < 256; b++)
        {
            byteTokens[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
            byteLevelIds[b] = prefix.Length == 0 && suffix.Length == 0 && lookup.TryGetValue([ByteLevelAlphabet.Char((byte)b)], out int bl) ? bl : -1;
        }
    }

    /// <summary>Token string → id of the model's vocabulary (added tokens not included).</summary>
    public IReadOnlyDictionary<string, int> Vocab => vocab;

    /// <summary>Reads the <c>model</c> object; anything unsupported or inconsistent names its field.</summary>
    public static BpeModel Parse(JsonSpec spec, JsonNode? node)
    {
        var model = spec.Object(node, "model");
        string type = spec.String(model, "type", "model") ?? (model["merges"] is not null ? "BPE" : throw spec.Bad("model.type", "missing"));
        if (type != "BPE")
        {
            throw spec.Bad("model.type", $"'{type}' is not supported (BPE only)");
        }

        if (model["dropout"] is JsonValue dropout && spec.Value<double>(dropout, "model.dropout", "a number") is > 0)
        {
            throw spec.Bad("model.dropout", "BPE dropout makes encoding random; only null or 0 is supported");
        }

        var vocabObject = spec.Object(model["vocab"], "model.vocab");
        var vocab = new Dictionary<string, int>(vocabObject.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocabObject)
        {
            vocab[token] = spec.Value<int>(id, $"model.vocab[{token}]", "an integer id");
        }

        string prefix = spec.String(model, "continuing_subword_prefix", "model") ?? string.Empty;
        string suffix = spec.String(model, "end_of_word_suffix", "model") ?? string.Empty;
        var mergeList = spec.Array(model["merges"], "model.merges");
        var merges = new Dictionary<long, long>(mergeList.Count);
        for (int r = 0; r < mergeList.Count; r++)
        {
            string field = $"model.merges[{r}]";
            (string a, string b) = mergeList[r] switch
            {
                JsonArray pair when pair.Count == 2 => (spec.Value<string>(pair[0], field, "a pair of strings")!, spec.Value<string>(pair[1], field, "a pair of strings")!),
                JsonValue v when spec.Value<string>(v, field, "\"a b\" or [a, b]")!.Split(' ') is [var x, var y] => (x, y),
                _ => throw spec.Bad(field, "must be \"a b\" or [a, b]"),
            };
            string merged = a + (b.StartsWith(prefix, StringComparison.Ordinal) ? b[prefix.Length..] : b);
            int ia = vocab.TryGetValue(a, out int x1) ? x1 : throw spec.Bad(field, $"'{a}' is not in model.vocab");
            int ib = vocab.TryGetValue(b, out int x2) ? x2 : throw spec.Bad(field, $"'{b}' is not in model.vocab");
            int id = vocab.TryGetValue(merged, out int x3) ? x3 : throw spec.Bad(field, $"the merge '{merged}' is not in model.vocab");
            merges[Pair(ia, ib)] = ((long)r << 32) | (uint)id;  // a repeated pair: the later rank wins, as tokenizers' map build has it
        }

        int unknown = -1;
        if (spec.String(model, "unk_token", "model") is { } unk)
        {
            unknown = vocab.TryGetValue(unk, out int u) ? u : throw spec.Bad("model.unk_token", $"'{unk}' is not in model.vocab");
        }

        return new BpeModel(
            vocab,
            merges,
            prefix,
            suffix,
            spec.Bool(model, "byte_fallback", "model", false),
            spec.Bool(model, "fuse_unk", "model", false),
            spec.Bool(model, "ignore_merges", "model", false),
            unknown);
    }

    /// <summary>
    /// Appends the tokens of one pre-tokenized piece to <paramref name="ids"/> and, when given, the
    /// input index each starts at (from <see cref="Workspace.Origin"/>) to <paramref name="starts"/>.
    /// <paramref name="byteLevel"/>: the piece's UTF-8 bytes as GPT-2's characters are the word.
    /// </summary>
    public void Tokenize(Workspace ws, Piece piece, bool byteLevel, List<int> ids, List<int>? starts)
    {
        var text = ws.Text(piece);
        if (text.Length <= CacheMaxChars && cached.TryGetValue(text, out var hit))
        {
            Emit(ws, piece, hit.Ids, hit.Starts, hit.Ids.Length, ids, starts);
            return;
        }

        var s = ws.Bpe;
        int n = byteLevel ? ByteSymbols(text, s) : CharSymbols(text, s);
        if (ignoreMerges && WholeWord(text, byteLevel, s) is int whole)
        {
            (s.Id[0], s.Start[0], n) = (whole, 0, 1);
            s.Next[0] = -1;
        }
        else
        {
            Merge(s, n);
        }

        int count = 0;
        for (int i = 0; i >= 0 && n > 0; i = s.Next[i])
        {
            s.Id[count] = s.Id[i];
            s.Start[count++] = s.Start[i];
        }

        Emit(ws, piece, s.Id, s.Start, count, ids, starts);
        if (text.Length <= CacheMaxChars && cache.Count < CacheCapacity)
        {
            cache.TryAdd(new string(text), (s.Id[..count], s.Start[..count]));
        }
    }

    /// <summary>The id of a token string, in the model's vocabulary.</summary>
    public bool TryGetId(string token, out int id) => vocab.TryGetValue(token, out id);

    private static long Pair(int a, int b) => ((long)a << 32) | (uint)b;

    private static void Emit(Workspace ws, Piece piece, int[] tokenIds, int[] tokenStarts, int count, List<int> ids, List<int>? starts)
    {
        for (int k = 0; k < count; k++)
        {
            ids.Add(tokenIds[k]);
            starts?.Add(ws.Origin[piece.Start + tokenStarts[k]]);
        }
    }

    // Byte-level symbols: one per UTF-8 byte, as its GPT-2 character (a lone surrogate is U+FFFD's bytes).
    private int ByteSymbols(ReadOnlySpan<char> text, BpeScratch s)
    {
        s.Ensure((text.Length * 3) + 1, 8);
        int n = 0;
        int pendingUnknown = -1;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < text.Length;)
        {
            int used = Rune(text[i..], out var rune);
            int bytes = rune.EncodeToUtf8(utf8);
            for (int k = 0; k < bytes; k++)
            {
                int id = byteLevelIds[utf8[k]];
                bool last = i + used == text.Length && k == bytes - 1;
                if (id < 0)
                {
                    // With a prefix or suffix (or a byte missing from the vocabulary) look the decorated character up.
                    Span<char> one = [ByteLevelAlphabet.Char(utf8[k])];
                    n = Symbol(one, i, i == 0 && k == 0, last, s, n, ref pendingUnknown);
                }
                else
                {
                    n = Known(id, i, s, n, ref pendingUnknown);
                }
            }

            i += used;
        }

        return FlushUnknown(s, n, pendingUnknown);
    }

    // Character-level symbols: one per code point (a surrogate pair is one).
    private int CharSymbols(ReadOnlySpan<char> text, BpeScratch s)
    {
        s.Ensure((text.Length * 4) + 1, prefix.Length + suffix.Length + 2);
        int n = 0;
        int pendingUnknown = -1;
        for (int i = 0; i < text.Length;)
        {
            int used = Rune(text[i..], out _);
            n = Symbol(text.Slice(i, used), i, i == 0, i + used == text.Length, s, n, ref pendingUnknown);
            i += used;
        }

        return FlushUnknown(s, n, pendingUnknown);
    }

    // One character: its (decorated) vocabulary id, else its byte tokens, else the unknown token.
    private int Symbol(ReadOnlySpan<char> chars, int start, bool first, bool last, BpeScratch s, int n, ref int pendingUnknown)
    {
        int length = 0;
        if (!first)
        {
            prefix.CopyTo(s.Key);
            length = prefix.Length;
        }

        chars.CopyTo(s.Key.AsSpan(length));
        length += chars.Length;
        if (last)
        {
            suffix.CopyTo(s.Key.AsSpan(length));
            length += suffix.Length;
        }

        if (lookup.TryGetValue(s.Key.AsSpan(0, length), out int id))
        {
            return Known(id, start, s, n, ref pendingUnknown);
        }

        if (byteFallback)
        {
            Span<byte> utf8 = stackalloc byte[length * 3];
            int count = Encoding.UTF8.GetBytes(s.Key.AsSpan(0, length), utf8);
            bool all = true;
            for (int k = 0; k < count; k++)
            {
                all &= byteTokens[utf8[k]] >= 0;
            }

            if (all)
            {
                n = FlushUnknown(s, n, pendingUnknown);
                pendingUnknown = -1;
                for (int k = 0; k < count; k++)
                {
                    n = Add(s, n, byteTokens[utf8[k]], start);
                }

                return n;
            }
        }

        if (unknown < 0)
        {
            return n;  // no unk_token: tokenizers drops the character, and so does this (the ids must be theirs)
        }

        if (pendingUnknown >= 0 && fuseUnknown)
        {
            return n;  // the pending unknown token grows over this character too
        }

        n = FlushUnknown(s, n, pendingUnknown);
        pendingUnknown = start;
        return n;
    }

    private int Known(int id, int start, BpeScratch s, int n, ref int pendingUnknown)
    {
        n = FlushUnknown(s, n, pendingUnknown);
        pendingUnknown = -1;
        return Add(s, n, id, start);
    }

    // The unknown token waiting to be written (fused runs grow it), at the character it started.
    private int FlushUnknown(BpeScratch s, int n, int pendingUnknown) => pendingUnknown < 0 ? n : Add(s, n, unknown, pendingUnknown);

    private static int Add(BpeScratch s, int n, int id, int start)
    {
        s.Id[n] = id;
        s.Start[n] = start;
        s.Prev[n] = n - 1;
        s.Next[n] = -1;
        if (n > 0)
        {
            s.Next[n - 1] = n;
        }

        return n + 1;
    }

    private static int Rune(ReadOnlySpan<char> text, out Rune rune)
    {
        if (System.Text.Rune.DecodeFromUtf16(text, out rune, out int used) != System.Buffers.OperationStatus.Done)
        {
            rune = System.Text.Rune.ReplacementChar;
        }

        return Math.Max(used, 1);
    }

    // ignore_merges: the whole word as written (byte-level: as GPT-2 characters), when it is a token.
    private int? WholeWord(ReadOnlySpan<char> text, bool byteLevel, BpeScratch s)
    {
        if (!byteLevel)
        {
            return lookup.TryGetValue(text, out int id) ? id : null;
        }

        s.Ensure(0, (text.Length * 3) + 1);
        int length = 0;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < text.Length;)
        {
            int used = Rune(text[i..], out var rune);
            int bytes = rune.EncodeToUtf8(utf8);
            for (int k = 0; k < bytes; k++)
            {
                s.Key[length++] = ByteLevelAlphabet.Char(utf8[k]);
            }

            i += used;
        }

        return lookup.TryGetValue(s.Key.AsSpan(0, length), out int whole) ? whole : null;
    }

    // Merges adjacent symbols, lowest rank first (leftmost among equal ranks), until none applies.
    private void Merge(BpeScratch s, int n)
    {
        int heap = 0;
        for (int i = 0; i + 1 < n; i++)
        {
            if (merges.TryGetValue(Pair(s.Id[i], s.Id[i + 1]), out long m))
            {
                Push(s.Heap, ref heap, (m & ~0xFFFFFFFFL) | (uint)i);
            }
        }

        while (heap > 0)
        {
            long top = Pop(s.Heap, ref heap);
            int pos = (int)(uint)top;
            long rank = top >> 32;
            int next = s.Next[pos];
            if (s.Id[pos] < 0 || next < 0 || !merges.TryGetValue(Pair(s.Id[pos], s.Id[next]), out long m) || (m >> 32) != rank)
            {
                continue;  // stale: this symbol or its neighbour merged since the entry was pushed
            }

            s.Id[pos] = (int)(uint)m;
            s.Id[next] = -1;
            int after = s.Next[next];
            s.Next[pos] = after;
            if (after >= 0)
            {
                s.Prev[after] = pos;
            }

            int before = s.Prev[pos];
            if (before >= 0 && merges.TryGetValue(Pair(s.Id[before], s.Id[pos]), out long left))
            {
                Push(s.Heap, ref heap, (left & ~0xFFFFFFFFL) | (uint)before);
            }

            if (after >= 0 && merges.TryGetValue(Pair(s.Id[pos], s.Id[after]), out long right))
            {
                Push(s.Heap, ref heap, (right & ~0xFFFFFFFFL) | (uint)pos);
            }
        }
    }

    private static void Push(long[] heap, ref int count, long item)
    {
        int i = count++;
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (heap[parent] <= item)
            {
                break;
            }

            heap[i] = heap[parent];
            i = parent;
        }

        heap[i] = item;
    }

    private static long Pop(long[] heap, ref int count)
    {
        long top = heap[0];
        long last = heap[--count];
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && heap[child + 1] < heap[child])
            {
                child++;
            }

            if (heap[child] >= last)
            {
                break;
            }

            heap[i] = heap[child];
            i = child;
        }

        heap[i] = last;
        return top;
    }
}
