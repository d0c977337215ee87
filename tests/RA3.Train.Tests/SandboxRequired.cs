using NUnit.Framework;
using RA3.Train.Sandbox;

namespace RA3.Train.Tests;

/// <summary>
/// Before any test of this assembly: the sandbox must isolate with namespaces. Without bubblewrap
/// ra3 falls back to limits only (and says so), and the evaluation, task, mid-training and EM
/// tests would pass in that weaker mode without anyone noticing; here they all fail instead, with
/// the line that says how to install it.
/// </summary>
[SetUpFixture]
public sealed class SandboxRequired
{
    [OneTimeSetUp]
    public void RequireNamespaces()
    {
        using var sandbox = Sandbox.Sandbox.Create();
        if (sandbox.Isolation != Isolation.Namespaces)
        {
            Assert.Fail($"the sandbox runs with limits only ({sandbox.Description}): install bubblewrap with tools/install-sandbox.sh (./test.sh does)");
        }
    }
}
