using NUnit.Framework;
using RA3.Model.IO;
using RA3.Testing;

namespace RA3.Model.Tests;

/// <summary>
/// The device fixtures — the op tests as files with float64 references, for the GPU machine where
/// TorchSharp does not travel (bench/gpu's RA3.GpuCheck runs them on cuda) — written and checked
/// on every portable backend here, so the files, the runner and the references are tested
/// wherever the suite runs; a reference off by 1e-3 fails its case.
/// </summary>
public sealed class DeviceFixtureTests(string backendName) : BackendTest(backendName)
{
    private static readonly Lazy<string> Folder = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"ra3-device-fixtures-{Environment.ProcessId}");
        DeviceFixtureCases.Write(dir, seed: 20261205);
        return dir;
    });

    [Test]
    public void EveryCasePassesAtFloat32Tolerance()
    {
        var results = DeviceFixtureCheck.Run(Backend, Folder.Value, (_, _) => 2e-5);
        TestContext.Out.WriteLine(string.Join('\n', DeviceFixtureCheck.Lines(results)));
        Assert.That(results.Select(r => r.Case).Distinct().Count(), Is.GreaterThanOrEqualTo(20), "every case ran");
        Assert.That(results.Where(r => !r.Pass).Select(r => $"{r.Case} {r.Output} {r.Error:E2}"), Is.Empty);
    }

    [Test]
    public void AReferenceOffBy1e3FailsItsCase()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"ra3-device-fixture-off-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string source = Directory.GetFiles(Folder.Value, "FlashAttentionBackward-*-d64-*.safetensors").Order(StringComparer.Ordinal).First();
            using (var file = SafeTensorsFile.Open(source))
            {
                var entries = file.Tensors.Select(t => t.DType is "I64" or "I32"
                    ? SafeTensorsWriter.Int64s(t.Name, file.ReadInts(t.Name), t.Shape)
                    : SafeTensorsWriter.Floats(t.Name, t.Name == "out.dq" ? [.. file.ReadFloats(t.Name).Select(x => x * 1.001f)] : file.ReadFloats(t.Name), t.Shape)).ToList();
                SafeTensorsWriter.Write(Path.Combine(dir, Path.GetFileName(source)), entries, file.Metadata.Where(m => m.Key != SafeTensorsFile.ChecksumKey).ToDictionary());
            }

            var results = DeviceFixtureCheck.Run(Backend, dir, (_, _) => 2e-5);
            Assert.That(results.Single(r => r.Output == "dq").Pass, Is.False, "dq 1e-3 off its reference");
            Assert.That(results.Where(r => r.Output != "dq").All(r => r.Pass), Is.True);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
