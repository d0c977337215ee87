using System.Text.Json.Nodes;
using RA3.Model.Tokenizers;
using RA3.Train.Generating;
using RA3.Train.Runs;
using RA3.Model.Scoring;

namespace RA3.Train.Cli;

/// <summary><c>ra3 generate</c>: continues a prompt, or each prompt of a jsonl, with a model, streaming the text.</summary>
public static class GenerateCommand
{
    /// <summary>Usage text: every option of <see cref="GenerateSettings"/> with its default.</summary>
    public static string Usage { get; } = SettingsCommandLine.Usage<GenerateSettings>(
        """
        usage: ra3 generate --model DIR (--prompt TEXT | --prompts FILE.jsonl) [options]

        Streams each continuation to standard output as it is sampled (with --prompts, each after a
        line "--- prompt N ---"). The sampling options are ra3 eval's.
        """);

    /// <summary>Runs the command.</summary>
    public static int Run(IEnumerable<string> args, TextWriter stdout)
    {
        var (s, _) = SettingsCommandLine.Parse<GenerateSettings>(args);
        s.CheckInput();
        var prompts = s.Prompt is not null ? [s.Prompt] : PromptGenerator.ReadPrompts(s.Prompts!).ToList();
        if (prompts.Count == 0)
        {
            throw new InvalidDataException($"{s.Prompts}: no prompts");
        }

        using var backend = BackendChoice.Create(s.Generation.Backend);
        using var model = Scorer.LoadModel(s.Model!, backend, WeightStorage.Parse(s.Generation.DType));
        var tokenizer = TokenizerLoader.Load(s.Generation.Tokenizer ?? s.Model!);
        var generator = new PromptGenerator(model, tokenizer, s.Generation.Sampling());
        var results = new List<PromptCompletion>(prompts.Count);
        for (int i = 0; i < prompts.Count; i++)
        {
            if (s.Prompts is not null)
            {
                stdout.WriteLine($"--- prompt {i + 1} ---");
            }

            results.Add(generator.Continue(prompts[i], i, stdout));
            stdout.WriteLine();
        }

        if (s.Out is not null)
        {
            RA3.Model.IO.AtomicFile.WriteAllText(s.Out, string.Concat(results.Select(r => new JsonObject
            {
                ["prompt"] = r.Prompt,
                ["completion"] = r.Completion,
                ["finish_reason"] = r.FinishReason,
                ["new_tokens"] = r.NewTokens,
            }.ToJsonString() + "\n")));
        }

        return 0;
    }
}
