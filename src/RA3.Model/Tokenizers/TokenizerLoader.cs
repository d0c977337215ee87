namespace RA3.Model.Tokenizers;

/// <summary>Picks a tokenizer from a command-line spec.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// <c>bytes</c> (the byte-level tokenizer), <c>gpt2</c> (GPT-2's BPE), a <c>tokenizer.json</c>
    /// path, or a model folder holding one.
    /// </summary>
    public static TextTokenizer Load(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec == "bytes")
        {
            return new ByteTokenizer();
        }

        if (spec == "gpt2")
        {
            return new Gpt2Tokenizer();
        }

        string path = Directory.Exists(spec) ? Path.Combine(spec, "tokenizer.json") : spec;
        return File.Exists(path)
            ? HuggingFaceBpeTokenizer.Load(path)
            : throw new FileNotFoundException($"tokenizer '{spec}': not 'bytes', 'gpt2', a tokenizer.json or a folder with one ({path} does not exist)", path);
    }
}
