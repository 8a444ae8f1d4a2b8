<powershell>
# User data of the Windows builder instances (images/win2022-*,
# `user_data_file`), run once by EC2Launch v2 at first boot.
#
# Packer's WinRM cannot travel through Session Manager, so the builder gets
# a WinRM HTTPS listener on 5986 for the length of the build: a certificate
# made here, on this instance (which is why Packer and Ansible cannot
# validate it and are told not to: `winrm_insecure`,
# `ansible_winrm_server_cert_validation=ignore`), NTLM only, no Basic auth,
# no unencrypted traffic, and a firewall rule for 5986 alone. The templates'
# last provisioner removes the listener, the rule and the certificate before
# sysprep, so none of it is in the image.
$ErrorActionPreference = 'Stop'

Set-Service -Name WinRM -StartupType Automatic
Start-Service -Name WinRM

$cert = New-SelfSignedCertificate `
  -DnsName $env:COMPUTERNAME `
  -CertStoreLocation 'Cert:\LocalMachine\My' `
  -FriendlyName 'gild-packer-winrm' `
  -KeyExportPolicy NonExportable `
  -NotAfter (Get-Date).AddDays(2)

Get-ChildItem -Path 'WSMan:\localhost\Listener' |
  Where-Object { $_.Keys -contains 'Transport=HTTPS' } |
  Remove-Item -Recurse -Force
New-Item -Path 'WSMan:\localhost\Listener' -Transport HTTPS -Address * `
  -CertificateThumbPrint $cert.Thumbprint -Force | Out-Null

Set-Item -Path 'WSMan:\localhost\Service\Auth\Basic' -Value $false
Set-Item -Path 'WSMan:\localhost\Service\AllowUnencrypted' -Value $false
Set-Item -Path 'WSMan:\localhost\MaxTimeoutms' -Value 1800000
Set-Item -Path 'WSMan:\localhost\Shell\MaxMemoryPerShellMB' -Value 2048

New-NetFirewallRule -Name 'gild-winrm-https' `
  -DisplayName 'gild build: WinRM over HTTPS (removed before sysprep)' `
  -Direction Inbound -Protocol TCP -LocalPort 5986 -Action Allow -Profile Any | Out-Null

Restart-Service -Name WinRM
</powershell>
