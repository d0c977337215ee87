using System.Text.Json.Nodes;
using NUnit.Framework;
using RA3.Kernels.Ops;
using RA3.Model.IO;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>
/// The hand-written model against what Hugging Face <c>transformers</c> computed on the same
/// checkpoints (<c>shared/fixtures/hf</c>): logits within 1e-4 relative, the loss within 1e-5,
/// the listed gradients within 1e-3 relative, on every Backend.
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
        var idsInfo = reference.Info("input_ids");
        int batch = idsInfo.Shape[0], time = idsInfo.Shape[1];
        using var plan = model.Plan(batch, time, PassKind.Train, withLogits: true);
        plan.SetBatch(reference.ReadInts("input_ids"));

        double loss = model.Forward(plan);
        Compare.Relative(plan.Logits!.ToFloatArray(), reference.ReadFloats("logits"), 1e-4, $"{fixture} logits");
        float refLoss = reference.ReadFloats("loss")[0];
        Assert.That(loss, Is.EqualTo(refLoss).Within(1e-5), $"{fixture} loss");

        model.Backward(plan);
        var names = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")))!["grads"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.That(names, Is.Not.Empty);
        foreach (string name in names)
        {
            Compare.Relative(model.Gradients![name].ToFloatArray(), reference.ReadFloats("grad." + name), 1e-3, $"{fixture} grad {name}");
        }
    }
}
