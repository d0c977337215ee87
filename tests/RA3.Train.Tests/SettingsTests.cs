using System.Reflection;
using NUnit.Framework;
using RA3.Train.Generating;
using RA3.Train.Tokenizing;
using RA3.Train.Cli;
using RA3.Train.Demo;
using RA3.Train.Evaluation;
using RA3.Train.Midtraining;
using RA3.Train.PostTraining;
using RA3.Train.Pretraining;
using RA3.Train.Runs;
using RA3.Train.Scoring;
using RA3.Train.Tasks;

namespace RA3.Train.Tests;

/// <summary>
/// Each setting is declared once (<see cref="OptionAttribute"/> on its record): the command line,
/// the usage text, the bounds and the run's config file all come from that declaration.
/// </summary>
public sealed class SettingsTests
{
    private string root = null!;

    [SetUp]
    public void Open() => root = Directory.CreateTempSubdirectory("ra3-settings-").FullName;

    [TearDown]
    public void Close() => Directory.Delete(root, recursive: true);

    [Test]
    public void UsageListsEveryDeclaredOptionWithItsDefault()
    {
        Check<PretrainSettings>(PretrainCommand.Usage);
        Check<MidtrainSettings>(MidtrainCommand.Usage);
        Check<RlvrSettings>(RlvrCommand.Usage);
        Check<DemoSettings>(DemoCommand.Usage);
        Check<TasksSettings>(TasksCommand.Usage);
        Check<ScoreSettings>(ScoreCommand.Usage);
        Check<EvalSettings>(EvalCommand.Usage);
        Check<TokenizeSettings>(TokenizeCommand.Usage);
        Check<GenerateSettings>(GenerateCommand.Usage);
        Assert.That(EvalCommand.Usage, Does.Match(@"\n  --temperature X +generation: temperature"), "the nested generation options keep their plain names");
        Assert.That(GenerateCommand.Usage, Does.Match(@"\n  --temperature X +generation: temperature.*\[0\.8\]"), "and the same declaration and default in ra3 generate");
        Assert.That(PretrainCommand.Usage, Does.Match(@"--lr X +peak learning rate +\[0\.002\]"));
        Assert.That(MidtrainCommand.Usage, Does.Match(@"--method ra3\|ntp +.*\[ra3\]"));

        static void Check<T>(string usage)
        {
            foreach (var d in Declared.Options<T>())
            {
                Assert.That(usage, Does.Contain($"--{d.Name} "), $"{typeof(T).Name}.{string.Join(".", d.Path.Select(p => p.Name))}");
            }

            var undeclared = typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.CanWrite && p.GetCustomAttribute<OptionAttribute>() is null && p.GetCustomAttribute<NestedOptionsAttribute>() is null);
            Assert.That(undeclared.Select(p => p.Name), Is.Empty, $"every settable property of {typeof(T).Name} is an option or a nested record of options");
        }
    }

    [TestCase("pretrain", "--steps", "0", "--steps: 0 must be at least 1")]
    [TestCase("pretrain", "--lr", "0", "--lr: 0 must be above 0")]
    [TestCase("pretrain", "--family", "mamba", "--family: 'mamba' is not one of llama, gpt2")]
    [TestCase("midtrain", "--alpha", "1", "--alpha: 1 must be above 0 and below 1")]
    [TestCase("rlvr", "--G", "1", "--G: 1 must be at least 2")]
    [TestCase("demo", "--seeds", "x", "--seeds: 'x' is not a valid integer")]
    [TestCase("demo", "--midtrain.alpha", "0", "--midtrain.alpha: 0 must be above 0 and below 1")]
    [TestCase("score", "--text", "a.txt", "--model: is required")]
    [TestCase("eval", "--split", "dev", "--problems: is required")]
    [TestCase("tasks", "--train", "-1", "--train: -1 must be at least 0")]
    public void AValueItsDeclarationRefusesIsOneLineNamingTheOption(string command, string option, string value, string message)
    {
        var err = new StringWriter();
        int code = CommandLine.Run([command, option, value], TextWriter.Null, err);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.ToString().TrimEnd(), Is.EqualTo($"ra3 {command}: {message} (ra3 {command} --help lists the options)"), "one line");
    }

    [Test]
    public void AConfigFileSetsWhatTheCommandLineDoesNotOverride()
    {
        string config = Path.Combine(root, "run.json");
        File.WriteAllText(config, """{ "steps": 7, "lr": 0.01, "family": "gpt2", "decay-all": true }""");
        var (s, flags) = SettingsCommandLine.Parse<PretrainSettings>(["--config", config, "--steps", "9", "--resume"], "resume");
        Assert.That((s.Steps, s.LearningRate, s.Family, s.DecayAll, s.Hidden), Is.EqualTo((9, 0.01f, "gpt2", true, new PretrainSettings().Hidden)));
        Assert.That(flags, Is.EquivalentTo(new[] { "resume" }));

        File.WriteAllText(config, """{ "stepz": 7 }""");
        var unknown = Assert.Throws<UsageException>(() => SettingsCommandLine.Parse<PretrainSettings>(["--config", config]))!;
        Assert.That(unknown.Message, Is.EqualTo($"{config}: unknown setting 'stepz'"));
        File.WriteAllText(config, """{ "steps": "many" }""");
        var wrong = Assert.Throws<UsageException>(() => SettingsCommandLine.Parse<PretrainSettings>(["--config", config]))!;
        Assert.That(wrong.Message, Does.StartWith($"{config}: setting 'steps'").And.Contain("integer"));
        File.WriteAllText(config, """{ "steps": -3 }""");
        var bound = Assert.Throws<SettingsException>(() => SettingsCommandLine.Parse<PretrainSettings>(["--config", config]))!;
        Assert.That((bound.Option, bound.Message), Is.EqualTo(("steps", "-3 must be at least 1")));
    }

    [Test]
    public void ASavedConfigReproducesTheRunsSettings()
    {
        var settings = new MidtrainSettings { Method = "ntp", ThinkCost = 0.2, Group = 8, Seed = 99, Out = Path.Combine(root, "mid") };
        Declared.Save(settings, settings.Out);
        var (again, _) = SettingsCommandLine.Parse<MidtrainSettings>(["--config", Path.Combine(settings.Out, Declared.ConfigFileName)]);
        Assert.That(again, Is.EqualTo(settings));

        var rlvr = new RlvrSettings { StopAfter = 3, PartialCredit = true, EvalProblems = "held.jsonl" };
        string json = Declared.ConfigJson(rlvr);
        Assert.That(json, Does.Not.Contain("stop-after"), "what only steers this process is not part of the run's config");
        Assert.That(json, Does.Contain("\"partial\": true").And.Contain("\"eval-problems\": \"held.jsonl\""));
    }

    [Test]
    public void TheDemoComposesTheMidtrainingAndRlvrSettings()
    {
        var (s, _) = SettingsCommandLine.Parse<DemoSettings>(["--midtrain.c", "0.2", "--midtrain.G", "8", "--rlvr.steps", "10", "--seeds", "3"]);
        Assert.That((s.Midtrain.ThinkCost, s.Midtrain.Group, s.Midtrain.MStepSteps, s.Rlvr.Steps, s.Rlvr.PartialCredit, s.Seeds), Is.EqualTo((0.2, 8, 12, 10, true, 3)));
        Assert.That(new DemoSettings().Midtrain, Is.EqualTo(new MidtrainSettings { Rounds = 2, MStepSteps = 12, LatentMaxTokens = 48, MStepSequenceLength = 256, MaxLines = 40 }), "parsing wrote into its own record, not the defaults");
        Assert.That(DemoCommand.Usage, Does.Contain("--midtrain.c X").And.Contain("--rlvr.partial").And.Not.Contain("--midtrain.init").And.Not.Contain("--rlvr.out"));
        var refused = Assert.Throws<UsageException>(() => SettingsCommandLine.Parse<DemoSettings>(["--midtrain.out", "x"]))!;
        Assert.That(refused.Message, Does.Contain("--midtrain.out"), "the demo sets each stage's folder itself");
        var bound = Assert.Throws<SettingsException>(() => SettingsCommandLine.Parse<DemoSettings>(["--rlvr.G", "1"]))!;
        Assert.That((bound.Option, bound.Message), Is.EqualTo(("rlvr.G", "1 must be at least 2")));

        string folder = Path.Combine(root, "demo");
        Declared.Save(s, folder);
        var (again, _) = SettingsCommandLine.Parse<DemoSettings>(["--config", Path.Combine(folder, Declared.ConfigFileName)]);
        Assert.That(again, Is.EqualTo(s));
    }

    [Test]
    public void SettingsBuiltInCodeAreHeldToTheSameBounds()
    {
        var e = Assert.Throws<SettingsException>(() => new Pretrainer(new PretrainSettings { Steps = 0, Out = Path.Combine(root, "p") }, TextWriter.Null, false).Run(resume: false))!;
        Assert.That((e.Option, e.Message), Is.EqualTo(("steps", "0 must be at least 1")));
    }
}
