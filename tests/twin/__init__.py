"""The offline twin's Python side: the SAM stack as CloudFormation would see it.

`cfn` loads, transforms and resolves infra/template.yaml; `stack` deploys it
into moto and checks what AWS would refuse (issue 11, twin item d).
"""
