"""The SAM stack deployed into moto, and the checks of what AWS would refuse."""
