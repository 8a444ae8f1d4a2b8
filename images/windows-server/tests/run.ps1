#Requires -Version 5.1
<#
Tests of every image made from images/windows-server, run on a fresh instance
of the image by buildspecs/test.yml (SSM Run Command, Windows PowerShell 5.1,
as SYSTEM).

Prints one line per check: "ok - <name>" or "not ok - <name>: <why>";
exits 1 if any check failed.

A family's own checks live in its folder, images/<family>/tests/run.ps1.
test.yml sends one script (buildspecs/bootstrap/family.py, `--test-script`):
the own run.ps1 of each family of the chain that uses this template, root
first (win2022-core-dotnet's, then win2022-iis's), then this file. Those
files run nothing themselves: they register their checks and any port
their image may listen on, for this file to run after its own:

    if ($null -eq $GildChecks) { $GildChecks = [Collections.Generic.List[scriptblock]]::new() }
    $GildChecks.Add({
        Test-Check 'W3SVC starts at boot and runs' { Test-ServiceState 'W3SVC' $true }
    })
    if ($null -eq $GildListenPorts) { $GildListenPorts = [Collections.Generic.List[int]]::new() }
    $GildListenPorts.Add(80)

(PowerShell finds Test-Check when the block runs, by then defined below.)
Keep check names literal strings: the twin's SSM stand-in reads them.
#>

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$script:Count = 0
$script:Failed = 0

# ----- helpers -------------------------------------------------------------------

function Write-Pass([string]$Name) {
    $script:Count++
    Write-Output "ok - $Name"
}

function Write-Fail([string]$Name, [string]$Why) {
    $script:Count++
    $script:Failed++
    $oneLine = ($Why -replace '\s+', ' ').Trim()
    Write-Output "not ok - ${Name}: $oneLine"
}

# Runs $Body; it returns nothing when the check passes, else why it failed.
function Test-Check([string]$Name, [scriptblock]$Body) {
    $problem = $null
    try {
        $problem = & $Body
    } catch {
        $problem = 'error: ' + $_.Exception.Message
    }
    $text = (@($problem) | Where-Object { $null -ne $_ -and ([string]$_).Length -gt 0 }) -join ' '
    if ($text -eq '') { Write-Pass $Name } else { Write-Fail $Name $text }
}

function Get-RegValue([string]$Path, [string]$Name) {
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Name
}

# Starts at boot (Automatic, delayed or not) and, if asked, runs now.
function Test-ServiceState([string]$Name, [bool]$MustRun) {
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $service) { return "no service $Name" }
    if ($service.StartType -ne 'Automatic') { return "start type $($service.StartType), want Automatic" }
    if ($MustRun -and $service.Status -ne 'Running') { return "status $($service.Status), want Running" }
    return $null
}

# ----- the template's checks: every Windows family ------------------------------

$schannel = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols'

Test-Check 'os is Windows Server 2022' {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    if ($os.Caption -notmatch 'Windows Server 2022' -or $os.BuildNumber -ne '20348') {
        return "$($os.Caption) build $($os.BuildNumber)"
    }
}

Test-Check 'no reboot pending (updates complete)' {
    $pending = @()
    if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired') {
        $pending += 'Windows Update'
    }
    if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending') {
        $pending += 'component servicing'
    }
    if ($pending.Count -gt 0) { return "pending: $($pending -join ', ')" }
}

Test-Check 'AmazonSSMAgent starts at boot and runs' { Test-ServiceState 'AmazonSSMAgent' $true }
Test-Check 'AmazonCloudWatchAgent installed, starts at boot' { Test-ServiceState 'AmazonCloudWatchAgent' $false }

Test-Check 'SMBv1 feature removed' {
    $feature = Get-WindowsFeature -Name FS-SMB1
    if ($null -ne $feature -and $feature.Installed) { return 'FS-SMB1 is installed' }
}

Test-Check 'SMBv1 off in the SMB server' {
    $smb = Get-SmbServerConfiguration
    if ($smb.EnableSMB1Protocol) { return 'EnableSMB1Protocol is true' }
}

foreach ($protocol in @('SSL 2.0', 'SSL 3.0', 'TLS 1.0', 'TLS 1.1')) {
    foreach ($side in @('Server', 'Client')) {
        Test-Check "$protocol off ($side)" {
            $enabled = Get-RegValue "$schannel\$protocol\$side" 'Enabled'
            if ($enabled -ne 0) { return "SCHANNEL $protocol\$side Enabled=$enabled" }
        }
    }
}

foreach ($side in @('Server', 'Client')) {
    Test-Check "TLS 1.2 on ($side)" {
        $enabled = Get-RegValue "$schannel\TLS 1.2\$side" 'Enabled'
        if ($null -ne $enabled -and $enabled -eq 0) { return "SCHANNEL TLS 1.2\$side Enabled=0" }
    }
}

Test-Check '.NET Framework uses strong crypto and the system TLS versions' {
    $problems = @()
    foreach ($key in @('HKLM:\SOFTWARE\Microsoft\.NETFramework\v4.0.30319',
                       'HKLM:\SOFTWARE\WOW6432Node\Microsoft\.NETFramework\v4.0.30319')) {
        foreach ($name in @('SchUseStrongCrypto', 'SystemDefaultTlsVersions')) {
            if ((Get-RegValue $key $name) -ne 1) { $problems += "$key $name" }
        }
    }
    if ($problems.Count -gt 0) { return "not 1: $($problems -join '; ')" }
}

Test-Check 'firewall on for every profile' {
    $off = @(Get-NetFirewallProfile | Where-Object { -not $_.Enabled } | ForEach-Object { $_.Name })
    if ($off.Count -gt 0) { return "off: $($off -join ', ')" }
}

Test-Check 'package list C:\gild\packages.txt present' {
    $list = 'C:\gild\packages.txt'
    if (-not (Test-Path -LiteralPath $list)) { return 'missing' }
    if ((Get-Item -LiteralPath $list).Length -eq 0) { return 'empty' }
}

Test-Check 'no installers left in C:\gild\downloads' {
    if (Test-Path -LiteralPath 'C:\gild\downloads') { return 'C:\gild\downloads exists' }
}

Test-Check "the build's WinRM HTTPS listener is gone" {
    $https = @(Get-ChildItem -Path WSMan:\localhost\Listener -ErrorAction SilentlyContinue |
        Where-Object { $_.Keys -contains 'Transport=HTTPS' })
    if ($https.Count -gt 0) { return 'an HTTPS listener is configured' }
    if (Get-NetTCPConnection -State Listen -LocalPort 5986 -ErrorAction SilentlyContinue) { return 'port 5986 listens' }
}

# ----- the families' own checks (registered above this file) -------------------

foreach ($checks in @($GildChecks)) {
    if ($checks -is [scriptblock]) {
        try { & $checks } catch { Write-Fail "a family's registered checks" ('stopped: ' + $_.Exception.Message) }
    }
}

# ----- listening ports -------------------------------------------------------------

# Ports below Windows' dynamic RPC range (49152+) that may listen on a
# non-loopback address: RPC endpoint mapper, NetBIOS, SMB, RDP, WinRM HTTP
# (5985 and its 47001 twin), and what the families registered.
$allowedPorts = @(135, 139, 445, 3389, 5985, 47001) + @($GildListenPorts | Where-Object { $_ -is [int] })

Test-Check 'only expected TCP ports listen' {
    $unexpected = @(Get-NetTCPConnection -State Listen |
        Where-Object { $_.LocalAddress -notin @('127.0.0.1', '::1') -and $_.LocalPort -lt 49152 -and $allowedPorts -notcontains $_.LocalPort } |
        ForEach-Object { "$($_.LocalAddress):$($_.LocalPort)" } | Sort-Object -Unique)
    if ($unexpected.Count -gt 0) { return "also: $($unexpected -join ' ') (allowed: $($allowedPorts -join ' '))" }
}

Write-Output "# $($script:Count) checks, $($script:Failed) failed"
if ($script:Failed -gt 0) { exit 1 }
exit 0
