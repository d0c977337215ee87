using RA3.Model.Tokenizers;
using RA3.Train.Data;
using RA3.Train.Tokenizing;

namespace RA3.Train.Cli;

/// <summary><c>ra3 tokenize</c>: a jsonl of texts to a jsonl of ids, or a corpus to token shards.</summary>
public static class TokenizeCommand
{
    /// <summary>Usage text: every option of <see cref="TokenizeSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<TokenizeSettings>(
        """
        usage: ra3 tokenize --tokenizer SPEC --in FILE.jsonl (--out FILE.jsonl [--add-special-tokens] | --shards DIR)

        --out: one {"ids": [...]} line per {"text": ...} line, in order, as Hugging Face's
        encode(text, add_special_tokens) gives them (special-token text becomes its id).
        --shards: the corpus (jsonl or a folder of source files) in the canonical document encoding
        (special-token text stays text), as memory-mapped token shards for ra3 pretrain --data DIR.
        """);

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var (s, _) = SettingsCommandLine.Parse<TokenizeSettings>(args);
        s.CheckOutput();
        var tokenizer = TokenizerLoader.Load(s.Tokenizer!);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        if (s.Out is not null)
        {
            var (lines, tokens) = JsonlTokenizer.Run(s.In!, s.Out, tokenizer, s.AddSpecialTokens);
            stdout.WriteLine($"{lines:N0} lines, {tokens:N0} tokens ({tokenizer.Name}) in {clock.Elapsed.TotalSeconds:0.0} s: {s.Out}");
            return 0;
        }

        var (documents, written) = TokenShards.Write(s.Shards!, Corpus.Read(s.In!), tokenizer, s.ShardTokens);
        stdout.WriteLine($"{documents:N0} documents, {written:N0} tokens ({tokenizer.Name}) in {clock.Elapsed.TotalSeconds:0.0} s: {s.Shards}");
        return 0;
    }
}
