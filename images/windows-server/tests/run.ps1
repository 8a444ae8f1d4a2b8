#Requires -Version 5.1
<#
win2022-core-dotnet image tests, run on a fresh instance of the image by
buildspecs/test.yml (SSM Run Command, Windows PowerShell 5.1, as SYSTEM).

Prints one line per check: "ok - <name>" or "not ok - <name>: <why>";
exits 1 if any check failed.

The part between "shared checks" markers is the same in
images/win2022-iis/tests/run.ps1: keep the two in step.
#>
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$script:Count = 0
$script:Failed = 0

# ----- shared checks: begin ---------------------------------------------------

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

Test-Check '.NET Framework 4.8 or later' {
    $release = Get-RegValue 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full' 'Release'
    if ($null -eq $release -or $release -lt 528040) { return "Release $release (4.8 is 528040)" }
}

$dotnetExe = Join-Path $env:ProgramFiles 'dotnet\dotnet.exe'
$runtimes = ''
if (Test-Path -LiteralPath $dotnetExe) { $runtimes = (& $dotnetExe --list-runtimes) -join "`n" }
foreach ($runtime in @('Microsoft.NETCore.App', 'Microsoft.AspNetCore.App')) {
    Test-Check ".NET 8 runtime $runtime" {
        if (-not (Test-Path -LiteralPath $dotnetExe)) { return "no $dotnetExe" }
        if ($runtimes -notmatch "(?m)^$([regex]::Escape($runtime)) 8\.0\.\d+ ") {
            return "dotnet --list-runtimes: $runtimes"
        }
    }
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

# ----- shared checks: end -------------------------------------------------------

# Ports below Windows' dynamic RPC range (49152+) that may listen on a
# non-loopback address: RPC endpoint mapper, NetBIOS, SMB, RDP, WinRM HTTP
# (5985 and its 47001 twin).
$allowedPorts = @(135, 139, 445, 3389, 5985, 47001)

Test-Check 'only expected TCP ports listen' {
    $unexpected = @(Get-NetTCPConnection -State Listen |
        Where-Object { $_.LocalAddress -notin @('127.0.0.1', '::1') -and $_.LocalPort -lt 49152 -and $allowedPorts -notcontains $_.LocalPort } |
        ForEach-Object { "$($_.LocalAddress):$($_.LocalPort)" } | Sort-Object -Unique)
    if ($unexpected.Count -gt 0) { return "also: $($unexpected -join ' ') (allowed: $($allowedPorts -join ' '))" }
}

Write-Output "# $($script:Count) checks, $($script:Failed) failed"
if ($script:Failed -gt 0) { exit 1 }
exit 0
