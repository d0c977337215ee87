using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Model.IO;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>
/// The hand-written model against what Hugging Face <c>transformers</c> computed on the same
/// checkpoints (<c>shared/fixtures/hf</c>): logits within 1e-4 relative, the loss within 1e-5,
/// the listed gradients within 1e-3 relative, on every Backend; and, on the <c>-b</c> fixtures
/// whose biases and norm weights are random, logits and loss from an independent forward.
/// </summary>
public sealed class HuggingFaceParityTests(string backendName) : BackendTest(backendName)
{
    [TestCase("gpt2-tiny")]
    [TestCase("llama-tiny")]
    public void LogitsLossAndGradientsMatchTransformers(string fixture)
    {
        string dir = Fixtures.SharedPath("fixtures", "hf", fixture);
        using var model = HuggingFaceCheckpoint.Load(dir, Backend, trainable: true);
        using var reference = SafeTensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        using var plan = ForwardMatches(model, reference, fixture, PassKind.Train);

        model.Backward(plan);
        var names = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!["grads"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.That(names, Is.Not.Empty);
        foreach (string name in names)
        {
            Compare.Relative(model.Gradients![name].ToFloatArray(), reference.ReadFloats("grad." + name), 1e-3, $"{fixture} grad {name}");
        }
    }

    // The plain fixtures' biases are 0 and their norm weights 1, so a model that drops or misuses
    // them still matches there; these have them random (no gradients or generations).
    [TestCase("gpt2-tiny-b")]
    [TestCase("llama-tiny-b")]
    public void LogitsAndLossMatchWithRandomBiasesAndNormWeights(string fixture)
    {
        string dir = Fixtures.SharedPath("fixtures", "hf", fixture);
        using var model = HuggingFaceCheckpoint.Load(dir, Backend);
        using var reference = SafeTensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        using var plan = ForwardMatches(model, reference, fixture, PassKind.Score);
    }

    // Runs the reference's input_ids through the model and checks logits and loss; returns the plan.
    private static Activations ForwardMatches(Transformer model, SafeTensorsFile reference, string fixture, PassKind kind)
    {
        var idsInfo = reference.Info("input_ids");
        var plan = model.Plan(idsInfo.Shape[0], idsInfo.Shape[1], kind, withLogits: true);
        plan.SetBatch(reference.ReadInts("input_ids"));
        double loss = model.Forward(plan);
        Compare.Relative(plan.Logits!.ToFloatArray(), reference.ReadFloats("logits"), 1e-4, $"{fixture} logits");
        Assert.That(loss, Is.EqualTo(reference.ReadFloats("loss")[0]).Within(1e-5), $"{fixture} loss");
        return plan;
    }
}
