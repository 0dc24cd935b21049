from ssbg.services.verification.service import VerificationService

__all__ = ["VerificationService"]
